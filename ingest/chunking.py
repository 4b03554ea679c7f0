"""Header-aware chunks: split Markdown by its headers, then bound each piece by size."""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

from app.store import searchable_text
from ingest.pdf import PAGE_MARKERS

HEADER_LEVELS = [("#" * level, f"h{level}") for level in range(1, 7)]
SECTION_SEPARATOR = " > "


@dataclass(frozen=True)
class TextChunk:
    position: int  # order within the document
    section: str  # heading path, e.g. "Refund Policy > Eligibility"; "" before any heading
    text: str
    page: int | None = None  # where it starts, when the Markdown marks pages (PDF)

    @property
    def text_to_embed(self) -> str:
        return searchable_text(self.section, self.text)


def chunk_markdown(markdown: str, chunk_size: int, chunk_overlap: int) -> list[TextChunk]:
    header_splitter = MarkdownHeaderTextSplitter(HEADER_LEVELS, strip_headers=True)
    size_splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size, chunk_overlap=min(chunk_overlap, chunk_size // 2)
    )
    chunks: list[TextChunk] = []
    page = None  # the page the text read so far ends on
    for section_doc in header_splitter.split_text(markdown):
        levels = sorted(section_doc.metadata, key=lambda key: int(key[1:]))
        section = SECTION_SEPARATOR.join(section_doc.metadata[key] for key in levels)
        for piece in size_splitter.split_text(section_doc.page_content):
            pages = [int(n) for n in PAGE_MARKERS.findall(piece)]
            text = _BLANK_LINES.sub("\n\n", PAGE_MARKERS.sub("", piece)).strip()
            starts_on = pages[0] if pages and PAGE_MARKERS.match(piece.lstrip()) else page
            page = pages[-1] if pages else page
            if text:
                chunks.append(TextChunk(position=len(chunks), section=section, text=text, page=starts_on))
    return chunks


_BLANK_LINES = re.compile(r"\n\s*\n")
