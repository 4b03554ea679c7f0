"""PDF measurements (issue 13): how much structure the text-layer parser finds in real PDFs, and eval sets that
hold the same documents as HTML and as PDF, to compare retrieval on both.

    python -m evaluation.pdf structure FILE.pdf... [--chunk-size 800]
    python -m evaluation.pdf corpus evaluation/data/policies OUT   # OUT/html and OUT/pdf, each an eval set

PDFs are printed from the HTML by Chromium (`--generate-pdf-document-outline` gives them bookmarks; add
`--no-outline` to test the font heuristics instead). Markdown and text become HTML through the same heading
rules the parser applies to them."""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from ingest.chunking import chunk_markdown
from ingest.parsing import plain_text_markdown
from ingest.pdf import PAGE_MARKERS, pdf_to_markdown

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def structure(paths: list[Path], chunk_size: int, chunk_overlap: int) -> list[dict[str, object]]:
    rows = []
    for path in paths:
        started = time.perf_counter()
        markdown = pdf_to_markdown(path)
        seconds = time.perf_counter() - started
        chunks = chunk_markdown(markdown, chunk_size, chunk_overlap)
        pages = len(PAGE_MARKERS.findall(markdown))
        rows.append(
            {
                "file": path.name,
                "pages_with_text": pages,
                "headings": sum(line.startswith("#") for line in markdown.splitlines()),
                "chunks": len(chunks),
                "chunks_with_heading_path": round(sum(bool(c.section) for c in chunks) / max(len(chunks), 1), 3),
                "chunks_with_page": round(sum(c.page is not None for c in chunks) / max(len(chunks), 1), 3),
                "parse_s_per_page": round(seconds / max(pages, 1), 3),
            }
        )
    return rows


def corpus(source: Path, out: Path, chromium: str, outline: bool) -> None:
    """`out`/html and `out`/pdf: the documents of eval set `source` as HTML and as PDF, with its questions."""
    from markdown_it import MarkdownIt

    renamed = {}
    for kind in ("html", "pdf"):
        (out / kind / "documents").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for document in sorted((source / "documents").iterdir()):
            html = out / "html" / "documents" / f"{document.stem}.html"
            if document.suffix == ".html":
                html.write_bytes(document.read_bytes())
            else:
                text = document.read_text(encoding="utf-8")
                markdown = text if document.suffix == ".md" else plain_text_markdown(text)
                body = MarkdownIt("commonmark").enable("table").render(markdown)
                html.write_text(f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>{body}</body></html>')
            pdf = out / "pdf" / "documents" / f"{document.stem}.pdf"
            flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp}", "--no-pdf-header-footer"]
            flags += ["--generate-pdf-document-outline"] if outline else []
            subprocess.run(
                [chromium, *flags, f"--print-to-pdf={pdf}", html.resolve().as_uri()], check=True, capture_output=True
            )
            renamed[document.name] = document.stem
    for kind in ("html", "pdf"):
        with (out / kind / "questions.jsonl").open("w") as questions:
            for line in (source / "questions.jsonl").read_text().splitlines():
                question = json.loads(line)
                if question.get("source") in renamed:
                    question["source"] = f"{renamed[question['source']]}.{kind}"
                questions.write(json.dumps(question) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m evaluation.pdf", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    measure = commands.add_parser("structure", help="headings and pages found in PDF files")
    measure.add_argument("files", type=Path, nargs="+")
    measure.add_argument("--chunk-size", type=int, default=800)
    measure.add_argument("--chunk-overlap", type=int, default=120)
    build = commands.add_parser("corpus", help="an eval set's documents as HTML and as PDF")
    build.add_argument("source", type=Path)
    build.add_argument("out", type=Path)
    build.add_argument("--chromium", default="/usr/bin/chromium")
    build.add_argument("--no-outline", action="store_true")
    args = parser.parse_args()
    if args.command == "corpus":
        corpus(args.source, args.out, args.chromium, not args.no_outline)
        return
    rows = structure(args.files, args.chunk_size, args.chunk_overlap)
    print("| " + " | ".join(rows[0]) + " |\n|" + " --- |" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(str(value) for value in row.values()) + " |")


if __name__ == "__main__":
    main()
