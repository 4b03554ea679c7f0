"""A PDF's text layer as Markdown with the document's own headings and a marker where each page starts, offline.
Headings come from the outline (bookmarks) when the PDF has one, otherwise from font size and weight. Lines,
fonts and text boxes come from pdfminer.six (MIT), the outline from pypdf (BSD); both are installed with dedoc,
whose own PDF readers need models from a hub (PyMuPDF would be faster, but its licence is the AGPL)."""

from __future__ import annotations

import re
import statistics
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import EmptyDocument, ParseError
from ingest.ocr import ocr_pages

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
    size: float  # font size, rounded to half points; 0 when read by OCR (unknown)
    bold: bool


def pdf_to_markdown(path: Path, ocr_languages: str = "") -> str:
    """Pages without a text layer (scans) are read by OCR in `ocr_languages` ("" for none). Raise ParseError for
    a damaged or locked PDF, EmptyDocument for one without text."""
    reader = _reader(path)
    outline = _outline(reader)
    lines = _without_running_lines(list(_lines(path)), len(reader.pages))
    if ocr_languages:
        lines = _with_scanned_pages(reader, lines, ocr_languages)
    if not any(_WORD.search(line.text) for line in lines):
        raise EmptyDocument(
            "no text was found in the PDF, in its text layer or by OCR"
            if ocr_languages
            else "the PDF has no text layer; OCR is off (ingest.ocr_languages)"
        )
    if outline:
        return _markdown(lines, *_outline_headings(lines, outline))
    return _markdown(lines, _font_headings(lines), {})


def _reader(path: Path) -> Any:
    from pypdf import PdfReader

    try:
        reader = PdfReader(path)
        locked = reader.is_encrypted and not reader.decrypt("")
        pages = 0 if locked else len(reader.pages)
    except Exception as exc:  # pypdf raises PdfReadError, but also ValueError, KeyError... on damaged files
        raise ParseError(f"the PDF file could not be read; it may be damaged or not really a PDF file ({exc})") from exc
    if locked:
        raise ParseError("the PDF is protected by a password; upload a copy without one")
    if not pages:
        raise EmptyDocument("the PDF has no pages")
    return reader


def _outline(reader: Any) -> list[tuple[int, str, int]]:
    """(depth, title, page) of every bookmark."""
    entries: list[tuple[int, str, int]] = []
    try:
        _walk_outline(reader, reader.outline, 1, entries)
    except Exception:  # a damaged outline: the fonts still give headings
        return []
    return entries


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


def _with_scanned_pages(reader: Any, lines: list[Line], languages: str) -> list[Line]:
    """`lines` and the OCR of the images on each page that has no text layer."""
    with_text = {line.page for line in lines}
    scanned: list[Line] = []
    with tempfile.TemporaryDirectory(prefix="docqa-ocr-") as tmp:
        for number, page in enumerate(reader.pages, start=1):
            if number in with_text:
                continue
            for n, image in enumerate(_images(page)):
                path = Path(tmp) / f"page{number}-{n}{Path(image.name).suffix or '.png'}"
                path.write_bytes(image.data)
                text = "\n\n".join(ocr_pages(path, languages))
                for box, paragraph in enumerate(re.split(r"\n\s*\n", text)):
                    scanned += [Line(number, 1000 * n + box, " ".join(row.split()), 0.0, False)
                                for row in paragraph.splitlines() if row.strip()]  # fmt: skip
    return sorted(lines + scanned, key=lambda line: line.page)


def _images(page: Any) -> list[Any]:
    try:
        return list(page.images)
    except Exception:  # an image pypdf cannot decode: the page stays without text
        return []


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


Headings = dict[int, tuple[int, str]]  # line index -> (depth, text)
Inserted = dict[int, list[tuple[int, str]]]  # line index -> headings to put before it


def _outline_headings(lines: list[Line], outline: list[tuple[int, str, int]]) -> tuple[Headings, Inserted]:
    """For each bookmark, the line of its page that reads as its title (a heading of the line's own text, with its
    numbering), or else its title as a heading inserted before the first line of its page."""
    headings: Headings = {}
    inserted: Inserted = {}
    on_page: dict[int, list[int]] = {}
    for index, line in enumerate(lines):
        on_page.setdefault(line.page, []).append(index)
    for depth, title, page in outline:
        wanted = _normalized(title)
        candidates = [i for i in on_page.get(page, []) + on_page.get(page + 1, []) if i not in headings]
        found = next((i for i in candidates if wanted and _normalized(lines[i].text) == wanted), None)
        if found is not None:
            headings[found] = (min(depth, MAX_DEPTH), lines[found].text)
        elif page in on_page:
            inserted.setdefault(on_page[page][0], []).append((min(depth, MAX_DEPTH), title))
    return headings, inserted


def _font_headings(lines: list[Line]) -> Headings:
    """Line index -> (depth, text) for lines set larger than the body text, or bold on a line of their own;
    depth by size, largest first."""
    weights: Counter[float] = Counter()
    for line in lines:
        if line.size:  # not read by OCR
            weights[line.size] += len(line.text)
    if not weights:
        return {}
    body = weights.most_common(1)[0][0]
    candidates = {}
    for index, line in enumerate(lines):
        if not line.size or not _reads_as_heading(line.text):
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


def _markdown(lines: list[Line], headings: Headings, inserted: Inserted) -> str:
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
        for depth, title in inserted.get(index, []):  # bookmarks whose titles are not in the page's text
            flush()
            out.append(f"{'#' * depth} {title}")
        if index in headings:
            flush()
            depth, title = headings[index]
            wraps = index > 0 and (index - 1) in headings and lines[index - 1].box == line.box
            if wraps and out[-1].startswith("#" * depth + " "):
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
