"""Older and open office formats (DOC, RTF, ODT; PPT, ODP) converted by LibreOffice (Debian's
libreoffice-writer-nogui and libreoffice-impress-nogui, run headless) to the DOCX or PPTX dedoc reads."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from app.errors import ParseError

CONVERTED_TO = {"doc": "docx", "rtf": "docx", "odt": "docx", "ppt": "pptx", "odp": "pptx"}
INSTALL_HINT = "sudo apt-get install libreoffice-writer-nogui libreoffice-impress-nogui"


def convert(source: Path, kind: str, workdir: Path) -> Path:
    """`source` (of `kind`) as DOCX or PPTX in `workdir`. LibreOffice runs in the parse child's process group,
    which is killed past the parse time limit, and with a profile of its own, so two conversions can run at once."""
    if shutil.which("soffice") is None:
        raise ParseError(f"{kind.upper()} files are converted by LibreOffice, which is not installed: {INSTALL_HINT}")
    target = CONVERTED_TO[kind]
    command = ["soffice", f"-env:UserInstallation={(workdir / 'profile').as_uri()}", "--headless", "--norestore"]
    result = subprocess.run(
        [*command, "--convert-to", target, "--outdir", str(workdir), str(source)], capture_output=True, text=True
    )
    converted = workdir / f"{source.stem}.{target}"
    if result.returncode != 0 or not converted.exists():
        reason = (result.stderr.strip().splitlines() or ["it wrote nothing"])[-1][:200]
        raise ParseError(
            f"the {kind.upper()} file could not be read; it may be damaged or not really a {kind.upper()} file "
            f"(LibreOffice: {reason})"
        )
    return converted
