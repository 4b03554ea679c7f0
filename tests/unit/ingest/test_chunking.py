from __future__ import annotations

from ingest.chunking import chunk_markdown

POLICY = """# Refund Policy

How refunds work.

## Eligibility

Refunds are accepted within 30 days.

### Exceptions

Gift cards are final sale.

## Process

Write to the support team.
"""


def test_every_chunk_keeps_its_heading_path_and_position() -> None:
    chunks = chunk_markdown(POLICY, chunk_size=500, chunk_overlap=50)
    assert [(c.position, c.section, c.text) for c in chunks] == [
        (0, "Refund Policy", "How refunds work."),
        (1, "Refund Policy > Eligibility", "Refunds are accepted within 30 days."),
        (2, "Refund Policy > Eligibility > Exceptions", "Gift cards are final sale."),
        (3, "Refund Policy > Process", "Write to the support team."),
    ]


def test_long_sections_are_split_by_size_with_overlap_and_keep_their_section() -> None:
    sentences = " ".join(f"Rule number {i} applies to every office." for i in range(60))
    chunks = chunk_markdown(f"# Handbook\n\n## Rules\n\n{sentences}", chunk_size=200, chunk_overlap=60)
    assert len(chunks) > 5
    assert all(len(c.text) <= 200 and c.section == "Handbook > Rules" for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    first_words_of_second = chunks[1].text.split()[:3]
    assert " ".join(first_words_of_second) in chunks[0].text  # the overlap


def test_text_before_any_heading_has_an_empty_section_and_embeds_without_it() -> None:
    (chunk,) = chunk_markdown("Just a note about parking.", chunk_size=100, chunk_overlap=10)
    assert chunk.section == ""
    assert chunk.text_to_embed == "Just a note about parking."


def test_heading_path_is_embedded_with_the_text() -> None:
    chunk = chunk_markdown(POLICY, 500, 50)[1]
    assert chunk.text_to_embed == "Refund Policy > Eligibility\nRefunds are accepted within 30 days."


def test_headings_without_body_make_no_chunks() -> None:
    assert chunk_markdown("# Title\n\n## Empty\n", 100, 10) == []


def test_chunks_know_the_page_they_start_on_and_lose_the_markers() -> None:
    sentence = "Hotels cost at most 150 euros a night in every city we travel to. "
    markdown = (
        "<!--page:1-->\n\n# Travel\n\nBook trains early.\n\n<!--page:2-->\n\n"
        + sentence * 8
        + "\n\n<!--page:3-->\n\n"
        + sentence * 8
        + "\n\n## Expenses\n\nFile claims within 30 days.\n"
    )
    chunks = chunk_markdown(markdown, chunk_size=300, chunk_overlap=0)
    assert all("<!--" not in chunk.text for chunk in chunks)
    assert chunks[0].page == 1 and chunks[0].text.startswith("Book trains early.")
    assert [chunk.page for chunk in chunks] == [1, 2, 2, 3, 3, 3]
    assert chunks[-1].section == "Travel > Expenses"
    assert chunk_markdown("# Plain\n\nNo pages here.\n", 300, 0)[0].page is None
