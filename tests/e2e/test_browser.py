"""The chat page in a real browser (Debian's Chromium, driven by Playwright) against the running service."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.e2e.conftest import REPO, RunningService

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
POLICY = b"# Leave Policy\n\n## Parental Leave\n\nNew parents receive 16 weeks of paid parental leave.\n"
QUESTION = "How much parental leave do new parents get?"
SLOW_MS = 120_000  # indexing and a CPU answer take seconds; the deadline leaves room on a slow machine


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `sudo apt-get install -y chromium` (.ci/run does this)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, service: RunningService) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{service.url}/")
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_upload_ask_cite_and_delete(page: Page, client: httpx.Client, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    policy = tmp_path / "leave_policy.md"
    policy.write_bytes(POLICY)
    item = page.locator("#document-list li", has_text="leave_policy.md")
    try:
        page.set_input_files("#files", policy)
        page.fill("#tags", "hr")
        page.click("#upload-button")
        expect(page.locator("#upload-status")).to_contain_text("leave_policy.md: accepted")
        expect(item).to_have_attribute("data-status", re.compile("indexed|failed"), timeout=SLOW_MS)
        assert item.get_attribute("data-status") == "indexed", item.inner_text()
        expect(item).to_contain_text("Tags: hr")

        question = page.locator("#question")
        question.fill("draft")
        question.press("Shift+Enter")  # a new line, not a send
        assert question.input_value() == "draft\n"
        assert page.locator(".turn").count() == 0
        question.fill(QUESTION)
        with page.expect_response("**/ask") as asked:
            question.press("Enter")
        assert asked.value.headers["content-type"].startswith("text/event-stream")
        turn = page.locator(".turn").last
        expect(turn).to_have_attribute("data-state", re.compile("done|error"), timeout=SLOW_MS)
        assert turn.get_attribute("data-state") == "done", turn.inner_text()
        assert "16" in turn.locator(".answer").inner_text()

        source = turn.locator(".source", has_text="leave_policy.md").first
        expect(source.locator(".source-section")).to_contain_text("Parental Leave")
        chunk = source.locator(".source-text")
        expect(chunk).to_be_hidden()
        source.locator("summary").click()
        expect(chunk).to_be_visible()
        expect(chunk).to_contain_text("16 weeks of paid parental leave")
        page.screenshot(path=ARTIFACTS / "chat.png", full_page=True)

        page.set_viewport_size({"width": 375, "height": 812})
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, "horizontal scroll at 375px"
        page.screenshot(path=ARTIFACTS / "chat-mobile.png", full_page=True)

        page.once("dialog", lambda dialog: dialog.accept())
        item.get_by_role("button", name="Delete leave_policy.md").click()
        expect(item).to_have_count(0)
        assert not [d for d in client.get("/documents").json()["documents"] if d["filename"] == "leave_policy.md"]
    finally:
        # Later tests share the service and expect no document left behind.
        for doc in client.get("/documents").json()["documents"]:
            if doc["filename"] == "leave_policy.md":
                client.delete(f"/documents/{doc['id']}")


def test_streamed_events_render_tokens_then_sources(page: Page) -> None:
    """The page's SSE reader, fed a fixed stream (CRLF line ends, a comment line, split tokens)."""
    citation = {"document_id": "d1", "filename": "a.md", "section": "A > B", "text": "Chunk text.", "score": 0.8}
    done = {"answer": "It is 16 weeks [1].", "citations": [citation], "timings_ms": {"generate": 5.0}}
    events = [("token", {"text": "It is "}), ("token", {"text": "16 weeks"}), ("token", {"text": " [1]."})]
    body = ": ping\r\n\r\n" + "".join(
        f"event: {name}\r\ndata: {json.dumps(data)}\r\n\r\n" for name, data in [*events, ("done", done)]
    )

    def stream(route: Route) -> None:
        route.fulfill(status=200, headers={"content-type": "text/event-stream"}, body=body)

    page.route("**/ask", stream)
    page.fill("#question", QUESTION)
    page.press("#question", "Enter")
    turn = page.locator(".turn").last
    expect(turn).to_have_attribute("data-state", "done")
    expect(turn.locator(".answer")).to_have_text("It is 16 weeks [1].")
    expect(turn.locator(".answer a.cite")).to_have_attribute("href", re.compile(r"#turn-\d+-source-1$"))
    expect(turn.locator(".source-file")).to_have_text("a.md")


def test_a_replaced_answer_is_shown_with_its_quote_highlighted_in_the_source(page: Page) -> None:
    """The done event carries the verified answer: it replaces the streamed text, and the quote is marked."""
    text = "Parents get leave. New parents receive 16 weeks of paid parental leave. Ask HR."
    start = text.index("New parents")
    quote = {"text": text[start : text.index("Ask HR") - 1], "start": start, "end": text.index("Ask HR") - 1}
    citation = {"document_id": "d1", "filename": "a.md", "section": "A", "text": text, "score": 0.8, "quote": quote}
    done = {
        "answer": f"{quote['text']} [1]",
        "verified": False,
        "citations": [citation],
        "timings_ms": {"generate": 5.0},
    }
    body = "".join(
        f"event: {name}\ndata: {json.dumps(data)}\n\n"
        for name, data in [("token", {"text": "It is 45 weeks [1]."}), ("done", done)]
    )
    page.route(
        "**/ask", lambda route: route.fulfill(status=200, headers={"content-type": "text/event-stream"}, body=body)
    )
    page.fill("#question", QUESTION)
    page.press("#question", "Enter")
    turn = page.locator(".turn").last
    expect(turn).to_have_attribute("data-state", "done")
    expect(turn.locator(".answer")).to_contain_text("New parents receive 16 weeks of paid parental leave. [1]")
    expect(turn.locator(".answer")).not_to_contain_text("45 weeks")
    expect(turn.locator(".answer .replaced")).to_contain_text("not backed by the sources")
    turn.locator(".source summary").click()
    expect(turn.locator(".source-text mark.quote")).to_have_text(quote["text"])


def test_the_api_key_field_is_sent_with_every_request(
    page: Page, service: RunningService, client: httpx.Client
) -> None:
    """A key typed once goes with questions and document requests: one for an empty collection lists nothing."""
    command = [sys.executable, "-m", "app", "keys", "create", "--name", "browser", "--collections", "empty"]
    key = subprocess.run(command, cwd=REPO, env=service.env, capture_output=True, text=True, check=True).stdout.strip()
    (doc,) = client.post("/documents", files={"files": ("visible.md", POLICY)}).json()["documents"]
    page.reload()
    expect(page.locator("#document-list li").first).to_be_visible()
    page.fill("#api-key", key)
    page.press("#api-key", "Tab")  # the change event stores it and reloads the list
    expect(page.locator("#document-list li")).to_have_count(0)
    sent: list[str | None] = []

    def answer(route: Route) -> None:
        sent.append(route.request.headers.get("authorization"))
        route.fulfill(status=403, headers={"content-type": "application/json"}, body='{"detail": "no"}')

    page.route("**/ask", answer)
    page.fill("#question", QUESTION)
    page.press("#question", "Enter")
    expect(page.locator(".turn").last).to_have_attribute("data-state", "error")
    assert sent == [f"Bearer {key}"]
    page.fill("#api-key", "")
    page.press("#api-key", "Tab")
    page.reload()
    expect(page.locator("#api-key")).to_have_value("")
    expect(page.locator("#document-list li").first).to_be_visible()
    client.delete(f"/documents/{doc['id']}")
