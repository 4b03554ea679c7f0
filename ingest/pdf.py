"""A PDF's text layer as Markdown with the document's own headings and a marker where each page starts, offline.
Headings come from the outline (bookmarks) when the PDF has one, otherwise from font size and weight. Lines,
fonts and text boxes come from pdfminer.six (MIT), the outline from pypdf (BSD); both are installed with dedoc,
whose own PDF readers need models from a hub (PyMuPDF would be faster, but its licence is the AGPL)."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import EmptyDocument, ParseError

PAGE_MARKER = "<!--page:{}-->"  # no spaces: the chunker never splits inside it
PAGE_MARKERS = re.compile(r"<!--page:(\d+)-->")
MAX_DEPTH = 6
_HEADING_SIZE_RATIO = 1.12  # a line this much larger than the body text may be a heading
_BOLD = re.compile(r"bold|black|heavy|semibold|demi", re.IGNORECASE)
_BULLET = re.compile(r"^(?:[•◦▪‣⁃●○■□–-]|\d{1,2}[.)]|[a-z][.)])\s")
_NUMBERED = re.compile(r"^(\d+(?:\.\d+)*)\.?\s+\S")
_WORD = re.compile(r"\w+")
_LEADING_NUMBER = re.compile(r"^\s*(?:\d+\.)*\d+\.?\s+")


@dataclass
class Line:
    page: int  # 1-based
    box: int  # the text box (about a paragraph) on its page
    text: str
    size: float  # font size, rounded to half points
    bold: bool


def pdf_to_markdown(path: Path) -> str:
    """Raise ParseError for a damaged or locked PDF, EmptyDocument for one without a text layer."""
    outline, pages = _outline(path)
    lines = _without_running_lines(list(_lines(path)), pages)
    if not any(_WORD.search(line.text) for line in lines):
        raise EmptyDocument("the PDF has no text layer; OCR is not enabled")
    headings = _outline_headings(lines, outline) if outline else _font_headings(lines)
    return _markdown(lines, headings)


def _outline(path: Path) -> tuple[list[tuple[int, str, int]], int]:
    """((depth, title, page) of every bookmark, the number of pages)."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseError("the PDF is protected by a password; upload a copy without one")
        entries: list[tuple[int, str, int]] = []
        _walk_outline(reader, reader.outline, 1, entries)
        return entries, len(reader.pages)
    except ParseError:
        raise
    except Exception as exc:  # pypdf raises PdfReadError, but also ValueError, KeyError... on damaged files
        raise ParseError(f"the PDF file could not be read; it may be damaged or not really a PDF file ({exc})") from exc


def _walk_outline(reader: Any, items: list[Any], depth: int, out: list[tuple[int, str, int]]) -> None:
    for item in items:
        if isinstance(item, list):
            _walk_outline(reader, item, depth + 1, out)
            continue
        page = reader.get_destination_page_number(item)
        title = " ".join(str(item.title or "").split())
        if title and page is not None and page >= 0:
            out.append((depth, title, page + 1))


def _lines(path: Path) -> Iterator[Line]:
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTChar, LTTextBox, LTTextLine

    try:
        for number, page in enumerate(extract_pages(path), start=1):
            boxes = sorted((e for e in page if isinstance(e, LTTextBox)), key=lambda b: (-round(b.y1), b.x0))
            for box_number, box in enumerate(boxes):
                for line in box:
                    if not isinstance(line, LTTextLine) or not (text := " ".join(line.get_text().split())):
                        continue
                    chars = [c for c in line if isinstance(c, LTChar) and not c.get_text().isspace()]
                    if not chars:
                        continue
                    size = round(2 * statistics.median(c.size for c in chars)) / 2
                    bold = sum(bool(_BOLD.search(c.fontname)) for c in chars) > len(chars) / 2
                    yield Line(number, box_number, text, size, bold)
    except Exception as exc:  # pdfminer raises PDFSyntaxError, but also struct and zlib errors on damaged files
        raise ParseError(f"the PDF file could not be read; it may be damaged ({exc})") from exc


def _shape(text: str) -> str:
    return re.sub(r"\d+", "#", text.lower())


def _without_running_lines(lines: list[Line], pages: int) -> list[Line]:
    """Drop running headers and footers: a line (digits aside, for page numbers) on at least half the pages."""
    if pages < 3:
        return lines
    seen = Counter(shape for shape in {(line.page, _shape(line.text)) for line in lines})
    on_pages = Counter(shape for _, shape in seen)
    running = {shape for shape, count in on_pages.items() if count >= max(3, pages / 2)}
    return [line for line in lines if _shape(line.text) not in running]


def _normalized(text: str) -> str:
    """Lower-case words, without the section number in front ("2.1 Scope" reads as "scope")."""
    return " ".join(_WORD.findall(_LEADING_NUMBER.sub("", text.lower())))


def _outline_headings(lines: list[Line], outline: list[tuple[int, str, int]]) -> dict[int, tuple[int, str]]:
    """Line index -> (depth, title) for each bookmark: the line of its page that reads as its title (the line's
    own text, with its numbering), or the bookmark's title before the first line of its page when none does."""
    headings: dict[int, tuple[int, str]] = {}
    first_of_page = {}
    for index, line in enumerate(lines):
        first_of_page.setdefault(line.page, index)
    for depth, title, page in outline:
        wanted = _normalized(title)
        candidates = [i for i, line in enumerate(lines) if line.page in (page, page + 1) and i not in headings]
        found = next((i for i in candidates if wanted and _normalized(lines[i].text) == wanted), None)
        if found is not None:
            headings[found] = (min(depth, MAX_DEPTH), lines[found].text)
        elif page in first_of_page:
            headings[-first_of_page[page] - 1] = (min(depth, MAX_DEPTH), title)  # before the page's first line
    return headings


def _font_headings(lines: list[Line]) -> dict[int, tuple[int, str]]:
    """Line index -> (depth, text) for lines set larger than the body text, or bold on a line of their own;
    depth by size, largest first."""
    weights: Counter[float] = Counter()
    for line in lines:
        weights[line.size] += len(line.text)
    body = weights.most_common(1)[0][0]
    candidates = {}
    for index, line in enumerate(lines):
        if not _reads_as_heading(line.text):
            continue
        if line.size >= body * _HEADING_SIZE_RATIO:
            candidates[index] = line.size
        elif line.bold and line.size >= body - 0.5 and _starts_its_box(lines, index):
            candidates[index] = body  # bold at the body size, atop a paragraph or alone: the deepest level
    sizes = sorted(set(candidates.values()), reverse=True)
    return {index: (min(sizes.index(size) + 1, MAX_DEPTH), lines[index].text) for index, size in candidates.items()}


def _starts_its_box(lines: list[Line], index: int) -> bool:
    line = lines[index]
    before = lines[index - 1] if index else None
    after = lines[index + 1] if index + 1 < len(lines) else None
    first = before is None or (before.page, before.box) != (line.page, line.box)
    return first and (after is None or (after.page, after.box) != (line.page, line.box) or not after.bold)


def _reads_as_heading(text: str) -> bool:
    words = text.split()
    return 0 < len(words) <= 14 and len(text) <= 100 and text[-1] not in ".,;" and bool(re.search(r"[^\W\d_]", text))


def _markdown(lines: list[Line], headings: dict[int, tuple[int, str]]) -> str:
    out: list[str] = []
    paragraph: list[str] = []
    page = box = None

    def flush() -> None:
        if paragraph:
            out.append(_escape(_joined(paragraph)))
            paragraph.clear()

    for index, line in enumerate(lines):
        if line.page != page:
            flush()
            page, box = line.page, None
            out.append(PAGE_MARKER.format(page))
        if (-index - 1) in headings:  # a bookmark whose title is not in the page's text
            flush()
            depth, title = headings[-index - 1]
            out.append(f"{'#' * depth} {title}")
        if index in headings:
            flush()
            depth, title = headings[index]
            if out and out[-1].startswith("#" * depth + " ") and lines[index - 1].box == line.box:
                out[-1] += " " + title  # a heading that wraps onto a second line
            else:
                out.append(f"{'#' * depth} {title}")
            box = line.box
            continue
        if line.box != box or _BULLET.match(line.text):
            flush()
        box = line.box
        paragraph.append(line.text)
    flush()
    return "\n\n".join(out) + "\n"


def _joined(lines: list[str]) -> str:
    text = lines[0]
    for line in lines[1:]:
        if text.endswith("-") and line[:1].islower():
            text = text[:-1] + line  # a word hyphenated at the end of a line
        else:
            text += " " + line
    return text


def _escape(text: str) -> str:
    return "\\" + text if text.startswith("#") else text
