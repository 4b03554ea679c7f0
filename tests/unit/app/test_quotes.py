"""Evidence quotes: the supporting sentence of a block, with offsets that point at it."""

from __future__ import annotations

import numpy as np

from app.quotes import best_quotes, sentence_spans

BLOCK = (
    "# Refunds\n"
    "Customers can return most items. Refunds are accepted within 30 days of purchase. "
    "Gift cards are not refundable, e.g. prepaid ones.\n- Keep the receipt."
)


def test_sentences_split_at_ends_and_lines_and_skip_headings() -> None:
    sentences = [BLOCK[start:end] for start, end in sentence_spans(BLOCK)]
    assert sentences == [
        "Customers can return most items.",
        "Refunds are accepted within 30 days of purchase.",
        "Gift cards are not refundable, e.g. prepaid ones.",
        "- Keep the receipt.",
    ]


def test_the_quote_is_the_sentence_holding_the_answer_and_its_offsets_point_at_it() -> None:
    quotes = best_quotes("How long do I have to get my money back?", "Within 30 days [1].", [BLOCK], [1])
    quote = quotes[1]
    assert quote.text == "Refunds are accepted within 30 days of purchase."
    assert BLOCK[quote.start : quote.end] == quote.text


def test_without_an_answer_the_question_and_the_embedding_choose() -> None:
    def embed(texts: list[str]) -> np.ndarray:  # a stand-in that prefers the sentence about gift cards
        rows = np.array([[1.0, 0.0] if "gift" in text.lower() else [0.0, 1.0] for text in texts])
        rows[0] = [1.0, 0.0]
        return rows

    quotes = best_quotes("Can I return a voucher?", "", ["Other text here.", BLOCK], [1, 2], embed)
    assert quotes[2].text.startswith("Gift cards are not refundable")
    assert set(quotes) == {1, 2}
