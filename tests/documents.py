"""Small policy documents in every supported format, built on the fly for the tests."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path


def refund_policy_docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Refund Policy", level=1)
    document.add_paragraph("This policy explains how customers get their money back.")
    document.add_heading("Eligibility", level=2)
    document.add_paragraph("Customers can request a full refund within 30 days of purchase.")
    document.add_heading("Gift Cards", level=2)
    document.add_paragraph("Gift cards are final sale and cannot be refunded or exchanged for cash.")
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
