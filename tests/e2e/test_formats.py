"""One file of every supported kind through the real processes (issue 13): each is indexed, and a question about
it cites it first, with its section and page; scans and photos are read by OCR."""

from __future__ import annotations

import functools

import httpx
import pytest

from tests.documents import (
    converted,
    email_bytes,
    odp_bytes,
    policy_docx,
    policy_pdf,
    pptx_bytes,
    scanned_pdf,
    text_image,
    xlsx_bytes,
)
from tests.e2e.conftest import wait_for_status


@functools.cache
def files() -> dict[str, bytes]:
    """One file of each kind; the older office formats saved by LibreOffice, as users' files were."""

    def policy(title: str, section: str, text: str) -> bytes:
        return policy_docx(title, f"The {title.lower()} of the company.", (section, text))

    deck = odp_bytes(("Visitors", "Visitors park their cars on level minus two of the garage."))
    return {
        "canteen.docx": policy("Canteen Policy", "Opening hours", "The canteen opens at half past eleven."),
        "printing.html": b"<html><body><h1>Printing</h1><p>Colour printing needs a cost centre code.</p></body></html>",
        "wifi.md": b"# Guest Wi-Fi\n\nThe guest network password changes every Monday.\n",
        "keys.txt": b"Spare Keys\n\nSpare keys are kept by the reception team.\n",
        "travel_guide.pdf": policy_pdf(
            "Travel Guide",
            ("Hotels", "Hotels are booked by the travel office."),
            ("Trains", "Book trains two weeks ahead."),
        ),
        "visitors.odp": deck,
        "visitors_old.ppt": converted(odp_bytes(("Deliveries", "Couriers deliver to gate five only.")), "odp", "ppt"),
        "kitchen.pptx": pptx_bytes(("Kitchen", "The kitchen fridge is cleared every Thursday.")),
        "taxi_limits.xlsx": xlsx_bytes([["Ride", "Taxi reimbursement limit"], ["Airport taxi", "sixty euros"]]),
        "lockers.csv": b"locker rule,when\nLockers are emptied,every Friday evening\n",
        "dress_code.doc": converted(policy("Dress Code", "Fridays", "Jeans are allowed on Fridays."), "docx", "doc"),
        "pets.odt": converted(
            policy("Pet Policy", "Dogs", "Dogs may come to the office on Wednesdays."), "docx", "odt"
        ),
        "noise.rtf": converted(
            policy("Noise Policy", "Calls", "Phone calls belong in the quiet booths."), "docx", "rtf"
        ),
        "scanned_mail_policy.pdf": scanned_pdf((), ("Parcels for staff are kept at the mail room for 10 days.",)),
        "badges.png": text_image("Lost badges are replaced by the security desk for 15 euros."),
        "plants.jpg": text_image("Office plants are watered by the facilities team on Mondays.", fmt="jpeg"),
        "bikes.tiff": text_image("Bicycles may be parked in the courtyard racks overnight.", fmt="tiff"),
        "move.eml": email_bytes(
            "Office move",
            "The office moves to the fourth floor on 1 December.",
            {"agenda.md": b"# Offsite agenda\n\nThe offsite starts with a boat trip at 9 o'clock.\n"},
        ),
    }


# question, the file that holds the answer, its section, its page, a fact its text holds
QUESTIONS = [
    ("When does the canteen open?", "canteen.docx", "Canteen Policy > Opening hours", None, "half past eleven"),
    ("What does colour printing need?", "printing.html", "Printing", None, "cost centre code"),
    ("How often does the guest network password change?", "wifi.md", "Guest Wi-Fi", None, "every Monday"),
    ("Who keeps the spare keys?", "keys.txt", "Spare Keys", None, "reception team"),
    ("How far ahead should trains be booked?", "travel_guide.pdf", "Travel Guide > Trains", 2, "two weeks"),
    ("On which level of the garage do visitors park their cars?", "visitors.odp", "Visitors", None, "level minus two"),
    ("Where do couriers deliver?", "visitors_old.ppt", "Deliveries", None, "gate five"),
    ("When is the kitchen fridge cleared?", "kitchen.pptx", "Kitchen", None, "every Thursday"),
    ("Are jeans allowed at work?", "dress_code.doc", "Dress Code > Fridays", None, "Jeans are allowed"),
    ("On which day may dogs come to the office?", "pets.odt", "Pet Policy > Dogs", None, "Wednesdays"),
    ("Where should phone calls be made?", "noise.rtf", "Noise Policy > Calls", None, "quiet booths"),
    ("What is the reimbursement limit for an airport taxi?", "taxi_limits.xlsx", "", None, "sixty euros"),
    ("When are the lockers emptied?", "lockers.csv", "", None, "every Friday evening"),
    ("How long are parcels kept at the mail room?", "scanned_mail_policy.pdf", "", 2, "10 days"),
    ("How much does it cost to replace a lost badge?", "badges.png", "", None, "15 euros"),
    ("Who waters the office plants?", "plants.jpg", "", None, "facilities team"),
    ("Where may bicycles be parked overnight?", "bikes.tiff", "", None, "courtyard racks"),
    ("Which floor does the office move to?", "move.eml", "Office move", None, "fourth floor"),
    ("What does the offsite start with?", "move.eml - agenda.md", "Offsite agenda", None, "boat trip"),
]  # fmt: skip


def test_every_supported_kind_is_on_the_list() -> None:
    from app.filetypes import SUPPORTED_KINDS, detect_kind

    assert {detect_kind(name, content) for name, content in files().items()} == SUPPORTED_KINDS


@pytest.fixture(scope="module")
def documents(client: httpx.Client) -> dict[str, str]:
    uploaded = []
    for name, content in files().items():  # one request each: the tests' service takes 1 MB a request
        response = client.post("/documents", files=[("files", (name, content))])
        assert response.status_code == 202, response.text
        uploaded += response.json()["documents"]  # an e-mail's attachment comes right after it
    for doc in uploaded:
        done = wait_for_status(client, doc["id"], {"indexed", "failed"}, timeout=300)
        assert done["status"] == "indexed", done
    return {d["filename"]: d["id"] for d in uploaded}


@pytest.mark.parametrize(("question", "filename", "section", "page", "fact"), QUESTIONS)
def test_a_question_about_each_kind_cites_its_file_section_and_page(
    client: httpx.Client, documents: dict[str, str], question: str, filename: str, section: str, page: int | None,
    fact: str,
) -> None:  # fmt: skip
    response = client.post("/ask", json={"question": question})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["citations"], answer["answer"]  # declined: nothing cited
    first = answer["citations"][0]
    assert (first["filename"], first["section"], first["page"]) == (filename, section, page)
    assert fact in first["text"]
