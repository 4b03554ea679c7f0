"""Text from images with Tesseract (Debian's tesseract-ocr, run as a program): uploaded PNG, JPEG and TIFF files,
and the pages of a PDF that have no text layer (scans)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from app.errors import ParseError

INSTALL_HINT = "sudo apt-get install tesseract-ocr (and tesseract-ocr-<language> for languages other than English)"


def ocr_pages(image: Path, languages: str) -> list[str]:
    """The text of each page of `image` (a multi-page TIFF has several), in `languages` ("eng", "eng+deu")."""
    if shutil.which("tesseract") is None:
        raise ParseError(f"reading text from images needs Tesseract, which is not installed: {INSTALL_HINT}")
    result = subprocess.run(
        ["tesseract", str(image), "stdout", "-l", languages],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_THREAD_LIMIT": "1"},  # the worker's other parse child needs the other core
    )  # in the parse child's process group, which is killed past the parse time limit
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no message"])[-1][:200]
        if "Failed loading language" in result.stderr:
            reason += f"; install the language: {INSTALL_HINT}"
        raise ParseError(f"Tesseract could not read the image ({reason})")
    pages = result.stdout.split("\f")  # Tesseract ends each page with a form feed
    return [page.strip() for page in (pages[:-1] if len(pages) > 1 and not pages[-1].strip() else pages)]
