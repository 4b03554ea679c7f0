"""Turns an uploaded file into Markdown whose headers follow the document's heading tree."""

from __future__ import annotations

import email
import email.policy
import functools
import logging
import re
import tempfile
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import EmptyDocument, ParseError, UnsupportedDocument
from app.filetypes import IMAGE_KINDS, SAMPLE_BYTES, SUPPORTED_KINDS, decode_text, text_encoding
from ingest.ocr import ocr_pages
from ingest.office import CONVERTED_TO, convert
from ingest.pdf import PAGE_MARKER, pdf_to_markdown

if TYPE_CHECKING:
    from dedoc import DedocManager
    from dedoc.data_structures.document_content import DocumentContent
    from dedoc.data_structures.table import Table
    from dedoc.data_structures.tree_node import TreeNode

log = logging.getLogger(__name__)
# dedoc logs about ten INFO lines per file (with all its parameters); keep them under our name, at WARNING.
_dedoc_log = logging.getLogger(f"{__name__}.dedoc")

PDF_PARSERS = ("text-layer", "dedoc")
MAX_HEADER_DEPTH = 6

_LABELS = {"md": "Markdown", "txt": "text", "jpeg": "JPEG", "eml": "e-mail"}
_DEDOC_PARAMETERS = {"structure_type": "tree", "pdf_with_text_layer": "true"}
_DEDOC_PDF_HINT = (
    "dedoc's PDF reader needs its models (run `python -m dedoc.download_models` once, with internet access)"
    " and poppler-utils; or set ingest.pdf_parser to text-layer to read the PDF's text layer without them"
)
_ORDERED_MARKER = re.compile(r"(?:\d+[.)]?)+|[A-Za-z][.)]|[ivxlcdmIVXLCDM]+[.)]")
_BULLETS = frozenset("-*+•◦▪▫■□●○‣⁃·o")
_LINE_START_HASH = re.compile(r"^([ \t]*)#", re.MULTILINE)
DECLARED_CHARSET = re.compile(rb"<meta[^>]+charset", re.IGNORECASE)
_NUMBERED_HEADING = re.compile(r"^(\d+(?:\.\d+)*)\.?\s+[A-Z]")


@dataclass(frozen=True)
class ParseOptions:
    pdf_parser: str = "text-layer"  # ingest.pdf_parser
    ocr_languages: str = "eng"  # ingest.ocr_languages: Tesseract's, "eng+deu"; "" reads no images

    def __post_init__(self) -> None:
        if self.pdf_parser not in PDF_PARSERS:
            raise ValueError(f"pdf_parser must be one of {PDF_PARSERS}, not {self.pdf_parser!r}")


def parse_to_markdown(path: Path, kind: str, options: ParseOptions = ParseOptions()) -> str:
    """Return the document at `path` as Markdown; raise UnsupportedDocument, EmptyDocument or ParseError."""
    if kind not in SUPPORTED_KINDS:
        supported = ", ".join(sorted(SUPPORTED_KINDS))
        raise UnsupportedDocument(f"documents of kind {kind!r} cannot be parsed; supported kinds: {supported}")
    if path.stat().st_size == 0:
        raise EmptyDocument(f"the {_label(kind)} file is empty")
    if kind in {"md", "txt"}:
        return _read_text(path, kind)
    if kind == "eml":
        return _email_markdown(path)
    if kind in IMAGE_KINDS:
        return _image_markdown(path, kind, options.ocr_languages)
    if kind == "pdf" and options.pdf_parser == "text-layer":
        return pdf_to_markdown(path, options.ocr_languages)
    return _parse_with_dedoc(path, kind)


def _email_markdown(path: Path) -> str:
    """An e-mail: its subject as the title, the sender, recipients and date as lines to search, then its text
    (the plain part, else the HTML one as text). Attachments were made documents of their own at upload."""
    from bs4 import BeautifulSoup

    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    if not isinstance(message, EmailMessage):
        raise ParseError("the e-mail could not be read")
    body = message.get_body(preferencelist=("plain", "html"))
    text = body.get_content() if body is not None else ""
    if body is not None and body.get_content_subtype() == "html":
        text = BeautifulSoup(text, "html.parser").get_text("\n")
    fields = [f"{name}: {message[name]}" for name in ("From", "To", "Cc", "Date") if message[name]]
    if not text.strip() and not message["Subject"]:
        raise EmptyDocument("the e-mail has neither a subject nor any text")
    title = " ".join(str(message["Subject"] or "(no subject)").split())
    return f"# {title}\n\n" + "  \n".join(fields) + "\n\n" + _escape_hashes(text.strip()) + "\n"


def _image_markdown(path: Path, kind: str, languages: str) -> str:
    """A photo or scan of text, read by Tesseract; each page of a multi-page TIFF marked as PDF pages are."""
    if not languages:
        raise UnsupportedDocument("reading text from images is off (ingest.ocr_languages is empty)")
    pages = ocr_pages(path, languages)
    if not any(page.strip() for page in pages):
        raise EmptyDocument(f"no text was found in the {_label(kind)} image")
    if len(pages) == 1:
        return plain_text_markdown(_escape_hashes(pages[0]))
    marked = [f"{PAGE_MARKER.format(n)}\n\n{_escape_hashes(text)}" for n, text in enumerate(pages, 1) if text]
    return plain_text_markdown("\n\n".join(marked))


def _label(kind: str) -> str:
    return _LABELS.get(kind, kind.upper())


def _read_text(path: Path, kind: str) -> str:
    # Plain text skips dedoc: its txt reader finds no headings, only lists, and nests the paragraphs that
    # follow a list inside its last item; the author's own paragraphs and line breaks read better.
    text = decode_text(path.read_bytes())
    if not text.strip():
        raise _no_text(kind)
    return text if kind == "md" else plain_text_markdown(_escape_hashes(text))


def plain_text_markdown(text: str) -> str:
    """Give headers to the heading lines of plain text: a one-line block that reads as a title.

    The first such block is the title (#); "2. Scope" is ##, "2.1 Who" ###; other title-like lines ##.
    """
    blocks = re.split(r"\n\s*\n", text.strip())
    out = []
    for number, block in enumerate(blocks):
        depth = _heading_depth(block.strip(), first=number == 0)
        out.append(f"{'#' * depth} {block.strip()}" if depth else block)
    return "\n\n".join(out) + "\n"


def _heading_depth(block: str, first: bool) -> int:
    if "\n" in block or "|" in block or len(block) > 80 or block[-1] in ".,:;!?":
        return 0
    numbered = _NUMBERED_HEADING.match(block)
    if numbered:
        return min(1 + len(numbered.group(1).split(".")), MAX_HEADER_DEPTH)
    words = [word for word in block.split() if word[:1].isalpha()]
    if not words or len(block) > 60 or sum(word[0].isupper() for word in words) < 0.6 * len(words):
        return 0
    return 1 if first else 2


def _no_text(kind: str) -> EmptyDocument:
    if kind == "pdf":
        return EmptyDocument("the PDF has no text layer; OCR is not enabled")
    return EmptyDocument(f"the {_label(kind)} file contains no text")


def _escape_hashes(text: str) -> str:
    """Keep a line of body text that starts with '#' from being read as a Markdown header."""
    return _LINE_START_HASH.sub(r"\1\\#", text)


def _unreadable(kind: str, exc: Exception) -> str:
    label = _label(kind)
    return f"the {label} file could not be read; it may be damaged or not really a {label} file ({_reason(exc)})"


def _reason(exc: Exception) -> str:
    """The first line of the library's message: dedoc's go on with temporary file names."""
    lines = (getattr(exc, "msg", None) or str(exc)).strip().splitlines()
    return lines[0].rstrip(": ")[:200] if lines else type(exc).__name__


def _parse_with_dedoc(path: Path, kind: str) -> str:
    manager = _manager()
    with tempfile.TemporaryDirectory(prefix="docqa-parse-") as tmp:
        # dedoc picks its reader by file extension; uploads are stored without one.
        named = Path(tmp) / f"document.{kind}"
        if kind in CONVERTED_TO:
            named.symlink_to(path.resolve())
            named = convert(named, kind, Path(tmp))
        elif kind == "html":
            _write_html_rows_apart(path, named)
        elif kind == "csv":
            named.write_text(decode_text(path.read_bytes()), encoding="utf-8")  # dedoc reads CSV as UTF-8
        else:
            named.symlink_to(path.resolve())
        try:
            document = manager.parse(str(named), parameters=_DEDOC_PARAMETERS)
        except Exception as exc:  # dedoc's own errors, but also zipfile, pandas and bare Exception for bad files
            if kind == "pdf":
                raise ParseError(f"dedoc could not read the PDF ({_reason(exc)}); {_DEDOC_PDF_HINT}") from exc
            raise ParseError(_unreadable(kind, exc)) from exc
    markdown = _content_markdown(document.content)
    if not markdown.strip():
        raise _no_text(kind)
    return markdown


def _write_html_rows_apart(source: Path, target: Path) -> None:
    """Copy the page so that dedoc keeps every table in place and its rows apart."""
    from bs4 import BeautifulSoup

    raw = source.read_bytes()
    # A page that declares its charset is read in it; one that does not, in the encoding its bytes show
    # (BeautifulSoup's own guess reads Windows-1252 French as Baltic).
    declared = DECLARED_CHARSET.search(raw[:4096]) is not None
    soup = BeautifulSoup(raw, "html.parser", from_encoding=None if declared else text_encoding(raw[:SAMPLE_BYTES]))
    for table in soup.find_all("table"):
        # dedoc moves tables with a border out of the text (to the end here); borderless ones stay in place as
        # tab-separated lines, but with the last cell of a row glued to the first of the next.
        table.attrs.pop("border", None)
        for row in table.find_all("tr"):
            cells = row.find_all(["td", "th"], recursive=False)
            if cells:
                cells[-1].append("\n")
    target.write_bytes(soup.encode("utf-8"))


def warm_up() -> None:
    """Build the dedoc pipeline now rather than at the first document."""
    _manager()


@functools.cache
def _manager() -> DedocManager:
    """One dedoc pipeline with only the pieces that work offline (the default one imports torchvision)."""
    started = time.perf_counter()
    from dedoc import DedocManager
    from dedoc.attachments_handler.attachments_handler import AttachmentsHandler
    from dedoc.converters.converter_composition import ConverterComposition
    from dedoc.metadata_extractors.concrete_metadata_extractors.base_metadata_extractor import BaseMetadataExtractor
    from dedoc.metadata_extractors.metadata_extractor_composition import MetadataExtractorComposition
    from dedoc.readers.csv_reader.csv_reader import CSVReader
    from dedoc.readers.docx_reader.docx_reader import DocxReader
    from dedoc.readers.excel_reader.excel_reader import ExcelReader
    from dedoc.readers.html_reader.html_reader import HtmlReader
    from dedoc.readers.pdf_reader.pdf_txtlayer_reader.pdf_txtlayer_reader import PdfTxtlayerReader
    from dedoc.readers.pptx_reader.pptx_reader import PptxReader
    from dedoc.readers.reader_composition import ReaderComposition
    from dedoc.structure_constructors.concrete_structure_constructors.tree_constructor import TreeConstructor
    from dedoc.structure_constructors.structure_constructor_composition import StructureConstructorComposition
    from dedoc.structure_extractors.concrete_structure_extractors.default_structure_extractor import (
        DefaultStructureExtractor,
    )
    from dedoc.structure_extractors.structure_extractor_composition import StructureExtractorComposition

    config = _dedoc_config()
    readers = [DocxReader, HtmlReader, PptxReader, ExcelReader, CSVReader, PdfTxtlayerReader]
    tree = TreeConstructor()
    pieces = {
        # dedoc's converters (odt, doc, rtf, ppt, xls...) all call LibreOffice's soffice, absent here.
        "converter": ConverterComposition([]),
        "reader": ReaderComposition([reader(config=config) for reader in readers]),
        "structure_extractor": StructureExtractorComposition(
            {"other": DefaultStructureExtractor(config=config)}, "other", config=config
        ),
        "structure_constructor": StructureConstructorComposition({"tree": tree}, tree),
        "document_metadata_extractor": MetadataExtractorComposition([BaseMetadataExtractor(config=config)]),
        "attachments_handler": AttachmentsHandler(config=config),
    }
    manager = DedocManager(config=config, manager_config=pieces)
    log.info("dedoc parser ready in %.1fs", time.perf_counter() - started)
    return manager


def _dedoc_config() -> dict[str, Any]:
    from dedoc.config import get_config

    # The first get_config() calls logging.basicConfig(stdout, INFO); a handler on the root logger makes it a no-op.
    root, guard = logging.getLogger(), logging.NullHandler()
    root.addHandler(guard)
    try:
        config = dict(get_config())
    finally:
        root.removeHandler(guard)
    if _dedoc_log.level == logging.NOTSET:
        _dedoc_log.setLevel(logging.WARNING)
    return {**config, "logger": _dedoc_log}


# dedoc's tree -> Markdown. Node types: root, header, list (a container), list_item, raw_text.


def _content_markdown(content: DocumentContent) -> str:
    tables = {table.metadata.uid: table for table in content.tables}
    blocks: list[str] = []
    _render(content.structure, 0, tables, blocks)
    # Tables no line points at: CSV and XLSX sheets, and any other dedoc did not anchor to a line.
    blocks.extend(_table_markdown(table) for table in tables.values())
    return "\n\n".join(block for block in blocks if block) + "\n"


def _render(node: TreeNode, depth: int, tables: dict[str, Table], blocks: list[str]) -> None:
    """Append the node's blocks, then its children's; `depth` counts the headers above it."""
    line_type = _line_type(node)
    if line_type in {"list", "list_item"}:
        _render_list(node, depth, tables, blocks)
        return
    if line_type == "header":
        # dedoc's levels vary by source (DOCX Title is 1, Heading 1 is 2...): the tree depth is what counts.
        depth += 1
        title = _one_line(node.text)
        blocks.append(f"{'#' * min(depth, MAX_HEADER_DEPTH)} {title}" if title else "")
    else:
        blocks.extend(_paragraphs(node.text))
    blocks.extend(_anchored_tables(node, tables))
    for child in node.subparagraphs:
        _render(child, depth, tables, blocks)


def _render_list(node: TreeNode, depth: int, tables: dict[str, Table], blocks: list[str]) -> None:
    """The list as one block; dedoc hangs the paragraphs (and tables) after a list under its last item."""
    lines: list[str] = []
    after: list[str] = []

    def walk(item: TreeNode, indent: int) -> None:
        line_type = _line_type(item)
        if line_type not in {"list", "list_item"}:
            _render(item, depth, tables, after)
            return
        if line_type == "list_item" and item.text.strip():
            lines.append("  " * indent + _list_item(item.text))
        after.extend(_anchored_tables(item, tables))
        for child in item.subparagraphs:
            walk(child, indent + (line_type == "list_item"))

    walk(node, 0)
    blocks.append("\n".join(lines))
    blocks.extend(after)


def _anchored_tables(node: TreeNode, tables: dict[str, Table]) -> list[str]:
    uids = [a.value for a in node.annotations if a.name == "table" and a.value in tables]
    return [_table_markdown(tables.pop(uid)) for uid in uids]


def _table_markdown(table: Table) -> str:
    return _markdown_table([[cell.get_text() for cell in row] for row in table.cells])


def _line_type(node: TreeNode) -> str:
    level = node.metadata.hierarchy_level
    return level.line_type if level is not None else "raw_text"


def _list_item(text: str) -> str:
    """'•\\tfoo' (DOCX) -> '- foo', '1.\\tfoo' -> '1. foo', 'foo' (HTML <ul>) -> '- foo'."""
    marker, tab, rest = text.strip().partition("\t")
    if not tab:
        marker, _, rest = text.strip().partition(" ")
        if not (_ORDERED_MARKER.fullmatch(marker) or marker in _BULLETS):
            return f"- {_one_line(text)}"
    if _ORDERED_MARKER.fullmatch(marker):
        return f"{marker} {_one_line(rest)}"
    return f"- {_one_line(rest)}" if len(marker) <= 3 else f"- {_one_line(text)}"


def _paragraphs(text: str) -> list[str]:
    """Each line of a text node becomes a paragraph; two or more tab-separated lines in a row, a table."""
    blocks: list[str] = []
    rows: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue  # blank lines end nothing: a <br> in an HTML cell leaves some between a table's rows
        if "\t" in line:
            rows.append(line.split("\t"))
            continue
        blocks.extend(_rows_block(rows))
        rows = []
        blocks.append(_escape_hashes(_one_line(line)))
    return [*blocks, *_rows_block(rows)]


def _rows_block(rows: list[list[str]]) -> list[str]:
    if len(rows) > 1:
        return [_markdown_table(rows)]
    return [_escape_hashes(_one_line(" ".join(row))) for row in rows]


def _markdown_table(rows: list[list[str]]) -> str:
    width = max((len(row) for row in rows), default=0)
    if not any(cell.strip() for row in rows for cell in row):
        return ""
    cells = [[_one_line(cell).replace("|", "\\|") for cell in row] + [""] * (width - len(row)) for row in rows]
    lines = [cells[0], ["---"] * width, *cells[1:]]
    return "\n".join(f"| {' | '.join(line)} |" for line in lines)


def _one_line(text: str) -> str:
    return " ".join(text.split())
