"""Small policy documents in every supported format, built on the fly for the tests."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path


def refund_policy_docx() -> bytes:
    return policy_docx(
        "Refund Policy",
        "This policy explains how customers get their money back.",
        ("Eligibility", "Customers can request a full refund within 30 days of purchase."),
        ("Gift Cards", "Gift cards are final sale and cannot be refunded or exchanged for cash."),
    )


def policy_docx(title: str, introduction: str, *sections: tuple[str, str]) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    document.add_paragraph(introduction)
    for heading, text in sections:
        document.add_heading(heading, level=2)
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


TRAVEL_POLICY_HTML = b"""<!DOCTYPE html>
<html><head><title>Travel Policy</title></head><body>
<h1>Travel Policy</h1>
<p>Rules for business trips taken by employees.</p>
<h2>Hotels</h2>
<p>Employees may book hotel rooms that cost at most 180 euros per night.</p>
<h2>Flights</h2>
<p>Economy class is required for flights shorter than six hours.</p>
</body></html>
"""

SECURITY_POLICY_MD = b"""# Security Policy

How we keep company systems safe.

## Passwords

Passwords must be at least 14 characters long and are changed every 90 days.

## Laptops

Company laptops must use full-disk encryption and lock after five minutes of inactivity.
"""

HOLIDAY_POLICY_TXT = b"""Holiday Policy

Every employee receives 25 days of paid vacation per calendar year.

Unused vacation days can be carried over until the end of March of the following year.
"""


def expense_policy_pdf() -> bytes:
    import pymupdf

    pdf = pymupdf.open()
    page = pdf.new_page()
    page.insert_text((72, 72), "Expense Policy", fontsize=18)
    page.insert_text((72, 110), "The daily meal allowance on business trips is 40 euros.", fontsize=11)
    page.insert_text((72, 130), "Receipts must be submitted within two weeks.", fontsize=11)
    return pdf.tobytes()


def corrupt_docx() -> bytes:
    """Starts like a ZIP archive (so it passes the upload check) but cannot be read."""
    return b"PK\x03\x04" + bytes(range(256)) * 8


def meeting_room(n: int) -> bytes:
    """One of many small, distinct documents (for tests that upload dozens)."""
    return f"# Room {n}\n\nMeeting room {n} is on floor {n % 7} and seats {n + 3} people.\n".encode()


def fake_zip(names: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in names.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def docx_bomb(unpacked_bytes: int = 5_000_000) -> bytes:
    """A DOCX-looking archive whose document.xml is `unpacked_bytes` of spaces in a few kB."""
    return fake_zip({"word/document.xml": b" " * unpacked_bytes}, zipfile.ZIP_DEFLATED)


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


# Minimal Office Open XML packages; python-pptx and openpyxl are not dependencies.
CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="xml" ContentType="application/xml"/></Types>'
)
PML = 'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"'
SML = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def pptx_bytes(*slides: tuple[str, str]) -> bytes:
    def shape(text: str) -> str:
        return (
            '<p:sp><p:nvSpPr><p:cNvPr id="2" name="t"/><p:cNvSpPr/><p:nvPr/></p:nvSpPr><p:spPr/>'
            f"<p:txBody><a:bodyPr/><a:p><a:r><a:t>{text}</a:t></a:r></a:p></p:txBody></p:sp>"
        )

    files = {"[Content_Types].xml": CONTENT_TYPES, "ppt/presentation.xml": f"<p:presentation {PML}/>"}
    for number, (title, body) in enumerate(slides, start=1):
        tree = shape(title) + shape(body)
        files[f"ppt/slides/slide{number}.xml"] = f"<p:sld {PML}><p:cSld><p:spTree>{tree}</p:spTree></p:cSld></p:sld>"
    return fake_zip({name: text.encode() for name, text in files.items()})


def xlsx_bytes(rows: list[list[str]]) -> bytes:
    strings = sorted({cell for row in rows for cell in row})
    sheet_rows = "".join(
        f'<row r="{r}">'
        + "".join(f'<c r="{chr(65 + c)}{r}" t="s"><v>{strings.index(cell)}</v></c>' for c, cell in enumerate(row))
        + "</row>"
        for r, row in enumerate(rows, start=1)
    )
    files = {
        "[Content_Types].xml": CONTENT_TYPES,
        "_rels/.rels": f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook {SML} xmlns:r="{REL}"><sheets>'
        '<sheet name="Rates" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{REL}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
        "xl/sharedStrings.xml": f"<sst {SML}>" + "".join(f"<si><t>{s}</t></si>" for s in strings) + "</sst>",
        "xl/worksheets/sheet1.xml": f"<worksheet {SML}><sheetData>{sheet_rows}</sheetData></worksheet>",
    }
    return fake_zip({name: text.encode() for name, text in files.items()})


def text_image(*lines: str, fmt: str = "png") -> bytes:
    """A photo-like rendering of some lines of text (no text layer anywhere)."""
    import pymupdf

    pdf = pymupdf.open()
    page = pdf.new_page(width=420, height=60 + 24 * len(lines))
    for n, line in enumerate(lines):
        page.insert_text((24, 40 + 24 * n), line, fontsize=14)
    if fmt == "tiff":  # PyMuPDF writes no TIFF: an uncompressed grayscale one by hand
        gray = page.get_pixmap(dpi=200, colorspace=pymupdf.csGRAY)
        return _tiff(gray.width, gray.height, gray.samples)
    return page.get_pixmap(dpi=200).tobytes(fmt)


def _tiff(width: int, height: int, pixels: bytes) -> bytes:
    """Baseline TIFF, one 8-bit gray strip: header, the pixels, then the directory of 8 tags."""
    import struct

    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 8)]
    tags += [(277, 3, 1), (278, 4, height), (279, 4, len(pixels))]
    directory = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", t, k, 1, v) for t, k, v in sorted(tags))
    return b"II*\x00" + struct.pack("<I", 8 + len(pixels)) + pixels + directory + b"\x00\x00\x00\x00"


def scanned_pdf(*pages: tuple[str, ...]) -> bytes:
    """Each page an image of its lines, as a scanner makes them; an empty tuple is a page with text (a cover)."""
    import pymupdf

    pdf = pymupdf.open()
    for lines in pages:
        page = pdf.new_page()
        if lines:
            page.insert_image(page.rect, stream=text_image(*lines, fmt="jpeg"))  # scanners write JPEG
        else:  # enough text for a chunk of its own, so the scanned page's text starts a chunk
            cover = "This cover page of the mail room policy has a text layer." * 15
            page.insert_textbox(pymupdf.Rect(72, 72, 520, 700), cover, fontsize=11)
    return pdf.tobytes()


def converted(content: bytes, source: str, target: str) -> bytes:
    """`content` (a `source` file) saved as `target` by LibreOffice, as users' older files were made."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"document.{source}"
        path.write_bytes(content)
        profile = f"-env:UserInstallation={(Path(tmp) / 'profile').as_uri()}"
        command = ["soffice", profile, "--headless", "--convert-to", target, "--outdir", tmp, str(path)]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        return (Path(tmp) / f"document.{target}").read_bytes()


def odp_bytes(*slides: tuple[str, str]) -> bytes:
    """A minimal OpenDocument presentation: a title and a text frame on each slide."""
    ns = {
        "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
        "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
        "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
        "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
        "svg": "urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0",
    }

    def frame(kind: str, y: int, text: str) -> str:
        box = f'svg:x="1cm" svg:y="{y}cm" svg:width="24cm" svg:height="4cm"'
        text_box = f"<draw:text-box><text:p>{text}</text:p></draw:text-box>"
        return f'<draw:frame presentation:class="{kind}" {box}>{text_box}</draw:frame>'

    pages = "".join(
        f'<draw:page draw:name="slide{n}">{frame("title", 1, title)}{frame("outline", 6, body)}</draw:page>'
        for n, (title, body) in enumerate(slides, start=1)
    )
    names = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in ns.items())
    content = f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {names} office:version="1.2">'
    content += (
        f"<office:body><office:presentation>{pages}</office:presentation></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.presentation"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>'
    )
    return fake_zip(
        {
            "mimetype": b"application/vnd.oasis.opendocument.presentation",
            "META-INF/manifest.xml": manifest.encode(),
            "content.xml": content.encode(),
        }
    )


def email_bytes(subject: str, body: str, attachments: dict[str, bytes] | None = None, html: bool = False) -> bytes:
    """An e-mail as a mail program saves it (.eml), with files attached."""
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "Facilities <facilities@example.com>"
    message["To"] = "all-staff@example.com"
    message["Date"] = "Mon, 23 Nov 2026 09:30:00 +0100"
    message["Subject"] = subject
    message.set_content(
        f"<html><body><p>{body}</p></body></html>" if html else body, subtype="html" if html else "plain"
    )
    for name, data in (attachments or {}).items():
        message.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return message.as_bytes()


def policy_pdf(title: str, *pages: tuple[str, str]) -> bytes:
    """A PDF with a text layer: the title on the first page, then one (heading, text) section per page."""
    import pymupdf

    pdf = pymupdf.open()
    for number, (heading, text) in enumerate(pages):
        page = pdf.new_page()
        if number == 0:
            page.insert_text((72, 72), title, fontsize=20, fontname="hebo")
        page.insert_text((72, 120), heading, fontsize=15, fontname="hebo")
        page.insert_text((72, 150), text, fontsize=11)
    return pdf.tobytes()
