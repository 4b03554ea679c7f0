"""RAFT data over a real store and index (MiniLM, FAISS, BM25): oracles, distractors, refusals, labels."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.config import EmbeddingSettings, RetrievalSettings
from app.embedding import Embedder
from app.embedding.sentence_transformers_backend import SentenceTransformersEmbedder
from app.faiss_index import FaissIndexWriter, FaissLiveIndex
from app.prompt import NO_ANSWER, load_template
from app.retrieval import Retriever
from app.sqlite_store import SQLiteStore
from app.store import NewChunk, Store, searchable_text
from finetune.__main__ import main
from finetune.data import build_examples, cite, generate_pairs, label_mix, load_pairs, split
from finetune.records import Example, ProbeResult, QAPair, read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = load_template(ROOT / "configs" / "prompt.txt")  # the one /ask uses
POLICIES = {
    "expenses.md": [
        ("Expenses > Deadlines", "Expense claims must be filed within 45 days of the purchase."),
        ("Expenses > Meals", "The daily meal allowance is 60 euros when travelling abroad."),
    ],
    "security.md": [
        ("Security > Passwords", "Passwords need at least 14 characters and change every 90 days."),
        ("Security > Devices", "Lost laptops must be reported to the service desk within 24 hours."),
    ],
    "leave.md": [
        ("Leave > Parental", "New parents receive 16 weeks of paid parental leave."),
        ("Leave > Holidays", "Employees get 28 days of annual holiday."),
    ],
    "vendors.md": [
        ("Procurement > Onboarding", "New suppliers are registered with form PRC-7 in the Helix system."),
        ("Procurement > Payments", "Suppliers are paid 30 days after the invoice date."),
    ],
}
PAIRS = [
    QAPair("How long do I have to file an expense claim?", "within 45 days", "expenses.md", "q1"),
    QAPair("What is the daily meal allowance abroad?", "60 euros", "expenses.md", "q2"),
    QAPair("How long must passwords be?", "at least 14 characters", "security.md", "q3"),
    QAPair("When must a lost laptop be reported?", "within 24 hours", "security.md", "q4"),
    QAPair("How much parental leave do new parents get?", "16 weeks", None, "q5"),  # no source: found by text
    QAPair("How many days of annual holiday do employees get?", "28 days", "leave.md", "q6"),
    QAPair("Which form registers a new supplier?", "PRC-7", "vendors.md", "q7"),
    # Paraphrased: no chunk holds it word for word, so the source's best-ranked chunk is the oracle.
    QAPair("When are suppliers paid?", "A month after they send the invoice", "vendors.md", "q8"),
]
ANSWER_IN_TEXT = {pair.id: pair.answer for pair in PAIRS if pair.id != "q8"}
BLOCK = re.compile(r"^\[(\d+)\] (.*)\n(.*)$", re.MULTILINE)


def build_data_dir(data_dir: Path, embedder: Embedder) -> Store:
    """A data dir laid out as the service's: rag.sqlite3 and index/, every document indexed."""
    store = SQLiteStore(data_dir / "rag.sqlite3")
    for filename, sections in POLICIES.items():
        doc, _ = store.add_document(filename, "md", filename, 1)
        texts = [searchable_text(section, text) for section, text in sections]
        vectors = embedder.embed(texts)
        chunks = [NewChunk(i, section, text, vectors[i]) for i, (section, text) in enumerate(sections)]
        store.replace_chunks(doc.id, chunks)
        store.jobs.finish(store.jobs.claim_next(60))
    FaissIndexWriter(data_dir / "index", embedder.dim).sync(store)
    return store


@pytest.fixture(autouse=True)
def root_logging_restored() -> Iterator[None]:
    """`main` configures logging for a command-line run; later tests must not log to a stream pytest closed."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return SentenceTransformersEmbedder(EmbeddingSettings())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    folder = tmp_path_factory.mktemp("data")
    build_data_dir(folder, embedder).close()
    return folder


@pytest.fixture(scope="module")
def store(data_dir: Path) -> Store:
    return SQLiteStore(data_dir / "rag.sqlite3")


@pytest.fixture(scope="module")
def retriever(data_dir: Path, store: Store, embedder: Embedder) -> Retriever:
    return Retriever(embedder, FaissLiveIndex(data_dir / "index"), store, RetrievalSettings())


def blocks(example: Example) -> dict[int, tuple[str, str]]:
    """Block number -> (heading, text), read back from the prompt the model sees."""
    return {int(n): (heading, text) for n, heading, text in BLOCK.findall(example.messages[-1]["content"])}


def holds(block: tuple[str, str], answer: str) -> bool:
    return answer.lower() in " ".join(block).lower()


def test_oracle_examples_cite_the_block_that_holds_the_answer(store: Store, retriever: Retriever) -> None:
    examples = build_examples(PAIRS, store, retriever, template=TEMPLATE, distractors=3, no_oracle_share=0)
    assert [e.id for e in examples] == [p.id for p in PAIRS]
    for example, pair in zip(examples, PAIRS, strict=True):
        shown = blocks(example)
        assert example.kind == "oracle" and len(shown) == 4
        assert example.messages[0] == {"role": "system", "content": TEMPLATE.system}
        assert example.messages[-1]["content"].endswith(f"Question: {pair.question}")
        assert example.target == cite(pair.answer, example.oracle_blocks[0])
        assert re.fullmatch(r".+ \[\d\]\.", example.target)
        if pair.id in ANSWER_IN_TEXT:
            holding = {n for n, block in shown.items() if holds(block, pair.answer)}
            assert holding == set(example.oracle_blocks)
        if pair.source:  # the oracle comes from the pair's own document
            assert all(shown[n][0].endswith(f"({pair.source})") for n in example.oracle_blocks)


def test_a_paraphrased_answer_cites_the_best_ranked_chunk_of_its_source(store: Store, retriever: Retriever) -> None:
    (example,) = build_examples(PAIRS[-1:], store, retriever, template=TEMPLATE, no_oracle_share=0)
    (oracle,) = example.oracle_blocks
    assert blocks(example)[oracle][0] == "Procurement > Payments (vendors.md)"
    assert example.target == f"A month after they send the invoice [{oracle}]."
    # Its source's other chunk may say the same in other words: it is never a distractor.
    assert [n for n, (heading, _) in blocks(example).items() if "vendors.md" in heading] == [oracle]


def test_no_oracle_examples_refuse_and_show_no_block_with_the_answer(store: Store, retriever: Retriever) -> None:
    examples = build_examples(PAIRS, store, retriever, template=TEMPLATE, distractors=3, no_oracle_share=1.0)
    for example, pair in zip(examples, PAIRS, strict=True):
        shown = blocks(example)
        assert example.kind == "no_oracle" and example.target == NO_ANSWER and example.oracle_blocks == []
        assert len(shown) == 4  # as many blocks as an oracle example: the count gives nothing away
        assert not any(holds(block, pair.answer) for block in shown.values())
        if pair.id == "q8":  # paraphrased: no chunk of its source may show, one could say it in other words
            assert not any(heading.endswith("(vendors.md)") for heading, _ in shown.values())


def test_a_share_of_examples_has_no_oracle(store: Store, retriever: Retriever) -> None:
    examples = build_examples(PAIRS, store, retriever, template=TEMPLATE, no_oracle_share=0.25, seed=3)
    assert sum(e.kind == "no_oracle" for e in examples) == 2
    assert build_examples(PAIRS, store, retriever, template=TEMPLATE, no_oracle_share=0.25, seed=3) == examples


def test_distractors_are_hard_negatives_first(store: Store, retriever: Retriever) -> None:
    pair = PAIRS[0]
    (example,) = build_examples([pair], store, retriever, template=TEMPLATE, distractors=1, no_oracle_share=0)
    ranked = retriever.search(pair.question, 40).chunks
    hardest = next(found.chunk for found in ranked if pair.answer not in found.chunk.text)
    (distractor,) = [block for n, block in blocks(example).items() if n not in example.oracle_blocks]
    assert distractor == (f"{hardest.section} ({hardest.filename})", hardest.text)


def test_without_a_retriever_oracles_are_found_by_their_text(store: Store) -> None:
    pairs = [p for p in PAIRS if p.id in ANSWER_IN_TEXT]
    examples = build_examples(pairs, store, None, template=TEMPLATE, no_oracle_share=0)
    for example, pair in zip(examples, pairs, strict=True):
        shown = blocks(example)
        assert len(shown) == 4 and holds(shown[example.oracle_blocks[0]], pair.answer)


def test_unknown_facts_are_never_closed_book_targets(store: Store, retriever: Retriever) -> None:
    labels = {pair.id: "Unknown" if i % 2 else "HighlyKnown" for i, pair in enumerate(PAIRS)}
    examples = build_examples(PAIRS, store, retriever, template=TEMPLATE, no_oracle_share=0.5, labels=labels)
    for example, pair in zip(examples, PAIRS, strict=True):
        assert example.label == labels[pair.id]
        shown = blocks(example)
        assert shown  # no example without context
        if example.label != "Unknown":
            continue
        if example.target == NO_ANSWER:  # the refusal when its oracle is absent
            assert not any(holds(block, pair.answer) for block in shown.values())
        else:  # its answer only ever beside the block that holds it
            assert example.kind == "oracle" and example.oracle_blocks
            if pair.id in ANSWER_IN_TEXT:
                assert holds(shown[example.oracle_blocks[0]], pair.answer)
    mix = label_mix(examples)
    assert sum(sum(kinds.values()) for kinds in mix.values()) == len(PAIRS)
    assert mix["Unknown"].get("oracle", 0) + mix["Unknown"].get("no_oracle", 0) == 4


def test_split_is_seeded_disjoint_and_keeps_both_kinds(store: Store, retriever: Retriever) -> None:
    examples = build_examples(PAIRS, store, retriever, template=TEMPLATE, no_oracle_share=0.5)
    train, held_out = split(examples, 0.5, seed=1)
    assert len(train) == len(held_out) == 4
    assert {e.id for e in train} | {e.id for e in held_out} == {p.id for p in PAIRS}
    assert {e.kind for e in train} == {e.kind for e in held_out} == {"oracle", "no_oracle"}
    assert split(examples, 0.5, seed=1) == (train, held_out)


def test_load_pairs_reads_both_pair_formats(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    lines = [
        {"question": "Q1?", "answer": "A1", "source": "a.md", "id": "x"},
        {"question": "Q2?", "answers": ["A2", "a2"], "answerable": True},  # the eval set's format
        {"question": "Q3?", "answers": [], "answerable": False},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    assert load_pairs(path) == [QAPair("Q1?", "A1", "a.md", "x"), QAPair("Q2?", "A2", None, "pair-2")]


def test_a_teacher_writes_pairs_kept_only_when_the_chunk_holds_the_answer(store: Store) -> None:
    class Teacher:
        model_name = "teacher"

        def generate(self, messages: list[dict[str, str]]) -> str:
            assert "Expense claims must be filed" in messages[-1]["content"]
            return "Q: When are claims due? A: within 45 days.\nQ: Who approves them? A: the CFO"

    (chunk, *_) = [c for c in store.searchable_chunks(sorted(store.chunk_ids())).values() if "45" in c.text]
    assert generate_pairs(Teacher(), [chunk], per_chunk=2) == [
        QAPair("When are claims due?", "within 45 days", "expenses.md", f"gen-{chunk.id}-0")
    ]


class ChatEndpoint(BaseHTTPRequestHandler):
    """A real HTTP server speaking the OpenAI chat completions shape, with a canned teacher reply."""

    status = 200
    requests: list[tuple[dict, str | None]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ChatEndpoint.requests.append((body, self.headers.get("Authorization")))
        reply = {
            "choices": [{"message": {"role": "assistant", "content": "Q: When are claims due? A: within 45 days"}}]
        }
        payload = json.dumps(reply if self.status == 200 else {"error": "overloaded"}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    ChatEndpoint.status, ChatEndpoint.requests = 200, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_a_teacher_behind_an_openai_compatible_endpoint_writes_pairs(
    data_dir: Path, tmp_path: Path, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    out = tmp_path / "pairs.jsonl"
    main(["pairs", "--data-dir", str(data_dir), "--out", str(out), "--teacher-url", endpoint, "--teacher", "big-model"])
    pairs = load_pairs(out)
    assert pairs and {(p.question, p.answer, p.source) for p in pairs} == {
        ("When are claims due?", "within 45 days", "expenses.md")  # kept only where the chunk says so
    }
    body, authorization = ChatEndpoint.requests[0]
    assert body["model"] == "big-model" and body["messages"][-1]["role"] == "user"
    assert authorization == "Bearer sk-test"


def test_a_failing_teacher_endpoint_is_a_clear_error(data_dir: Path, tmp_path: Path, endpoint: str) -> None:
    ChatEndpoint.status = 503
    with pytest.raises(SystemExit, match="answered 503"):
        main(["pairs", "--data-dir", str(data_dir), "--out", str(tmp_path / "p.jsonl"), "--teacher-url", endpoint])
    assert not (tmp_path / "p.jsonl").exists()


def test_the_data_command_writes_the_split_and_prints_the_mix(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs, labels, out = tmp_path / "pairs.jsonl", tmp_path / "labels.jsonl", tmp_path / "examples"
    write_jsonl(pairs, PAIRS)
    label_of = {"q1": "Unknown", "q2": "MaybeKnown"}
    write_jsonl(labels, [ProbeResult(i, "", "", label, False, 0.0) for i, label in label_of.items()])
    args = ["--pairs", str(pairs), "--data-dir", str(data_dir), "--labels", str(labels), "--out", str(out)]
    main(["data", *args, "--held-out", "0.25"])
    train, held_out = read_jsonl(out / "train.jsonl", Example), read_jsonl(out / "held_out.jsonl", Example)
    assert len(train) == 6 and len(held_out) == 2
    assert {e.id: e.label for e in train + held_out if e.label} == label_of
    printed = capsys.readouterr().out
    assert "| Unknown |" in printed and "| unlabelled |" in printed and "6 train, 2 held out" in printed
