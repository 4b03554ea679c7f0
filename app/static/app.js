// The chat page: asks /ask (streamed as server-sent events, or plain JSON), uploads to /documents
// and keeps the document list current. No framework, no build step; every string from the API
// reaches the page through textContent, never innerHTML.
"use strict";

const ACTIVE_STATUSES = new Set(["queued", "processing"]);
const POLL_MS = 1000;
const READY_POLL_MS = 2000;

const $ = (id) => document.getElementById(id);
let turnCount = 0;
let asking = false;
let pollTimer = null;
let refreshSeq = 0; // only the newest refresh renders and schedules the next poll
const lastStatus = new Map(); // document id -> status, to announce changes once

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

async function errorDetail(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
  } catch (_) {
    // not JSON: fall through to the status line
  }
  return `${response.status} ${response.statusText}`.trim();
}

// ---- Asking -------------------------------------------------------------------------------------

function startTurn(question) {
  turnCount += 1;
  const id = `turn-${turnCount}`;
  const answer = el("div", { class: "answer", id: `${id}-answer`, "aria-live": "polite", "aria-busy": "true" });
  const state = el("p", { class: "turn-state", text: "Searching the documents…" });
  const sources = el("div", { class: "sources", id: `${id}-sources` });
  const item = el(
    "li",
    { class: "turn", id },
    el("p", { class: "question" }, el("span", { class: "visually-hidden", text: "You asked: " }), question),
    state,
    answer,
    sources,
  );
  $("conversation").append(item);
  $("empty-chat").hidden = true;
  item.scrollIntoView({ block: "nearest" });
  return { id, item, answer, state, sources, text: "" };
}

function appendToken(turn, text) {
  if (!turn.text) turn.state.textContent = "Answering…";
  turn.text += text;
  turn.answer.textContent = turn.text;
}

// Turns "[2]" in the answer into a link to the second source.
function answerWithLinks(turn, answer, citationCount) {
  const parts = answer.split(/(\[\d+\])/);
  return parts.map((part) => {
    const n = /^\[(\d+)\]$/.exec(part)?.[1];
    if (!n || Number(n) < 1 || Number(n) > citationCount) return part;
    return el("a", { href: `#${turn.id}-source-${n}`, class: "cite", "aria-label": `source ${n}` }, part);
  });
}

// The chunk text with its evidence quote (text[start:end]) highlighted, when the answer cites it.
function sourceText(c) {
  const q = c.quote;
  if (!q || q.start < 0 || q.end > c.text.length || q.start >= q.end) {
    return el("blockquote", { class: "source-text", text: c.text });
  }
  return el(
    "blockquote",
    { class: "source-text" },
    c.text.slice(0, q.start),
    el("mark", { class: "quote", text: c.text.slice(q.start, q.end) }),
    c.text.slice(q.end),
  );
}

function renderSources(turn, citations) {
  if (!citations.length) return;
  const list = el("ol", { class: "source-list" });
  citations.forEach((c, i) => {
    const summary = el(
      "summary",
      {},
      el("span", { class: "source-number", text: `[${i + 1}]` }),
      el("span", { class: "source-file", text: c.filename }),
      c.section ? el("span", { class: "source-section", text: c.section }) : null,
      c.page != null ? el("span", { class: "source-page", text: `p. ${c.page}` }) : null,
      el("span", { class: "source-score", text: `score ${Number(c.score).toFixed(2)}` }),
    );
    const details = el("details", {}, summary, sourceText(c));
    list.append(el("li", { id: `${turn.id}-source-${i + 1}`, class: "source" }, details));
  });
  turn.sources.append(el("h3", { class: "sources-title", text: "Sources" }), list);
}

function finishTurn(turn, body) {
  const citations = body.citations || [];
  turn.answer.replaceChildren(...answerWithLinks(turn, body.answer, citations.length));
  if (body.verified === false && body.answer !== turn.text) {
    // The streamed text was not backed by the sources: the server replaced it (answer.verify).
    turn.answer.append(el("p", { class: "replaced", text: "The generated answer was not backed by the sources, so it was replaced." }));
  }
  renderSources(turn, citations);
  const ms = body.timings_ms ? Object.values(body.timings_ms).reduce((a, b) => a + b, 0) : null;
  turn.state.textContent = ms === null ? "" : `Answered in ${(ms / 1000).toFixed(1)} s`;
  turn.state.classList.add("done");
  turn.answer.setAttribute("aria-busy", "false");
  turn.item.dataset.state = "done";
}

function failTurn(turn, detail) {
  turn.state.textContent = "";
  turn.answer.append(el("p", { class: "error", role: "alert", text: `Could not answer: ${detail}` }));
  turn.answer.setAttribute("aria-busy", "false");
  turn.item.dataset.state = "error";
}

// One server-sent event block ("event: x\ndata: {...}") -> {event, data}.
function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return { event, data: data.join("\n") };
}

// Reads the event stream; returns true once a done or error event was handled.
async function readEvents(response, turn) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const handle = (block) => {
    const { event, data } = parseEvent(block);
    if (!data) return false;
    const payload = JSON.parse(data);
    if (event === "token") appendToken(turn, payload.text || "");
    else if (event === "done") finishTurn(turn, payload);
    else if (event === "error") failTurn(turn, payload.detail || "unknown error");
    return event === "done" || event === "error";
  };
  for (;;) {
    const { value, done } = await reader.read();
    buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
    // Normalise line ends, but keep a trailing "\r": its "\n" may come in the next chunk.
    const keep = !done && buffer.endsWith("\r") ? 1 : 0;
    buffer = buffer.slice(0, buffer.length - keep).replace(/\r\n?/g, "\n") + buffer.slice(buffer.length - keep);
    const blocks = buffer.split("\n\n");
    buffer = done ? "" : blocks.pop();
    for (const block of blocks) {
      if (handle(block)) return true;
    }
    if (done) return false;
  }
}

async function ask(question) {
  const turn = startTurn(question);
  try {
    const response = await fetch("/ask", {
      method: "POST",
      headers: { ...authHeaders(), "Content-Type": "application/json", Accept: "text/event-stream, application/json" },
      body: JSON.stringify({ question, stream: true }),
    });
    if (!response.ok) return failTurn(turn, await errorDetail(response));
    const type = response.headers.get("content-type") || "";
    if (type.includes("application/json")) return finishTurn(turn, await response.json());
    if (!(await readEvents(response, turn))) failTurn(turn, "the answer stream ended early");
  } catch (err) {
    failTurn(turn, err.message || String(err));
  }
}

function setAsking(busy) {
  asking = busy;
  $("ask-button").disabled = busy;
  $("ask-button").textContent = busy ? "Answering…" : "Ask";
}

async function submitQuestion(event) {
  event.preventDefault();
  const box = $("question");
  const question = box.value.trim();
  if (!question || asking) return;
  box.value = "";
  setAsking(true);
  try {
    await ask(question);
  } finally {
    setAsking(false);
    box.focus();
  }
}

function questionKeydown(event) {
  if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
  event.preventDefault();
  $("ask-form").requestSubmit();
}

// ---- Uploading ----------------------------------------------------------------------------------

function showUploadResults(documents, detail) {
  const status = $("upload-status");
  status.replaceChildren();
  if (detail) status.append(el("p", { class: "error", text: detail }));
  const list = el("ul", { class: "upload-results" });
  for (const doc of documents || []) {
    let text = `${doc.filename}: accepted, queued for indexing`;
    let cls = "ok";
    if (doc.status === "rejected") [text, cls] = [`${doc.filename}: rejected (${doc.error})`, "error"];
    else if (doc.duplicate) text = `${doc.filename}: already uploaded (${doc.status})`;
    else if (doc.new_version) text = `${doc.filename}: version ${doc.version}, queued; the previous one answers meanwhile`;
    list.append(el("li", { class: cls, text }));
  }
  if (list.children.length) status.append(list);
}

function upload(event) {
  event.preventDefault();
  const files = $("files").files;
  if (!files.length) return;
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  const tags = $("tags").value.trim();
  if (tags) form.append("tags", tags);
  const collection = $("collection").value.trim();
  if (collection) form.append("collection", collection);

  const progress = $("upload-progress");
  const button = $("upload-button");
  progress.hidden = false;
  progress.value = 0;
  button.disabled = true;
  $("upload-status").replaceChildren(el("p", { text: "Uploading…" }));

  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/documents");
  for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
  xhr.responseType = "json";
  xhr.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) progress.value = Math.round((100 * e.loaded) / e.total);
  });
  xhr.addEventListener("load", () => {
    const body = xhr.response || {};
    if (xhr.status === 202) {
      showUploadResults(body.documents);
      $("upload-form").reset();
    } else {
      const detail = typeof body.detail === "string" ? body.detail : `upload failed (${xhr.status})`;
      showUploadResults(body.documents, detail);
    }
  });
  xhr.addEventListener("error", () => showUploadResults([], "The upload failed: the server could not be reached."));
  xhr.addEventListener("loadend", () => {
    progress.hidden = true;
    button.disabled = false;
    refreshDocuments();
  });
  xhr.send(form);
}

// ---- Document list ------------------------------------------------------------------------------

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function documentMeta(doc) {
  const parts = [doc.kind.toUpperCase(), formatBytes(doc.size_bytes)];
  if (doc.collection && doc.collection !== "default") parts.push(`collection ${doc.collection}`);
  if (doc.version > 1) parts.push(`version ${doc.version}`);
  if (doc.indexed_version && doc.indexed_version !== doc.version) parts.push(`version ${doc.indexed_version} answers`);
  if (doc.status === "indexed") parts.push(`${doc.chunk_count} chunk${doc.chunk_count === 1 ? "" : "s"}`);
  parts.push(new Date(doc.created_at * 1000).toLocaleString());
  return parts.join(" · ");
}

function documentItem(doc) {
  const remove = el("button", { type: "button", class: "delete", "aria-label": `Delete ${doc.filename}` }, "Delete");
  remove.addEventListener("click", () => deleteDocument(doc.id, doc.filename));
  return el(
    "li",
    { class: "document", "data-id": doc.id },
    el("div", { class: "document-head" }, el("span", { class: "document-name" }), el("span", { class: "status" })),
    el("p", { class: "document-meta" }),
    el("p", { class: "document-tags" }),
    el("p", { class: "error document-error" }),
    remove,
  );
}

// Updates an item in place so focus on its delete button survives polling.
function updateItem(item, doc) {
  item.dataset.status = doc.status;
  item.querySelector(".document-name").textContent = doc.filename;
  const status = item.querySelector(".status");
  status.textContent = doc.status;
  status.className = `status status-${doc.status}`;
  item.querySelector(".document-meta").textContent = documentMeta(doc);
  const tags = item.querySelector(".document-tags");
  tags.textContent = doc.tags.length ? `Tags: ${doc.tags.join(", ")}` : "";
  tags.hidden = !doc.tags.length;
  const error = item.querySelector(".document-error");
  error.textContent = doc.error || "";
  error.hidden = !doc.error;
}

function announce(doc) {
  const before = lastStatus.get(doc.id);
  lastStatus.set(doc.id, doc.status);
  if (before && before !== doc.status && !ACTIVE_STATUSES.has(doc.status)) {
    $("documents-status").textContent = `${doc.filename} is ${doc.status}.`;
  }
}

function renderDocuments(documents) {
  const list = $("document-list");
  const existing = new Map([...list.children].map((li) => [li.dataset.id, li]));
  documents.forEach((doc, i) => {
    const item = existing.get(doc.id) || documentItem(doc);
    existing.delete(doc.id);
    updateItem(item, doc);
    announce(doc);
    if (list.children[i] !== item) list.insertBefore(item, list.children[i] || null);
  });
  for (const [id, item] of existing) {
    item.remove();
    lastStatus.delete(id);
  }
  $("documents-empty").hidden = documents.length > 0;
}

async function refreshDocuments() {
  clearTimeout(pollTimer);
  pollTimer = null;
  const seq = ++refreshSeq;
  let documents = [];
  try {
    const response = await fetch("/documents", { headers: { ...authHeaders(), Accept: "application/json" } });
    if (!response.ok) throw new Error(await errorDetail(response));
    documents = (await response.json()).documents;
    if (seq !== refreshSeq) return;
    renderDocuments(documents);
  } catch (err) {
    if (seq !== refreshSeq) return;
    $("documents-status").textContent = `Could not load the documents: ${err.message}`;
  }
  if (documents.some((d) => ACTIVE_STATUSES.has(d.status))) {
    pollTimer = setTimeout(refreshDocuments, POLL_MS);
  }
}

async function deleteDocument(id, filename) {
  if (!window.confirm(`Delete ${filename}? It will no longer be used to answer questions.`)) return;
  const response = await fetch(`/documents/${encodeURIComponent(id)}`, { method: "DELETE", headers: authHeaders() });
  if (!response.ok && response.status !== 404) {
    $("documents-status").textContent = `Could not delete ${filename}: ${await errorDetail(response)}`;
  } else {
    $("documents-status").textContent = `${filename} was deleted.`;
  }
  await refreshDocuments();
  $("files").focus();
}

// ---- API key ------------------------------------------------------------------------------------

const KEY_STORAGE = "docqa.apiKey";

function authHeaders() {
  const key = localStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function setUpKeyField() {
  const field = $("api-key");
  field.value = localStorage.getItem(KEY_STORAGE) || "";
  field.addEventListener("change", () => {
    const key = field.value.trim();
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
    refreshDocuments();
  });
  $("key-form").addEventListener("submit", (e) => e.preventDefault());
}

// ---- Readiness ----------------------------------------------------------------------------------

async function checkReady() {
  const note = $("readiness");
  try {
    const response = await fetch("/ready");
    if (response.ok) {
      note.hidden = true;
      return;
    }
    const body = await response.json();
    note.hidden = false;
    if (body.error) {
      note.textContent = `The models failed to load: ${body.error}`;
      return; // a failed load does not recover without a restart
    }
    note.textContent = "The models are loading; questions can be asked once they are ready.";
  } catch (_) {
    note.hidden = false;
    note.textContent = "The server cannot be reached.";
  }
  setTimeout(checkReady, READY_POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("ask-form").addEventListener("submit", submitQuestion);
  $("question").addEventListener("keydown", questionKeydown);
  $("upload-form").addEventListener("submit", upload);
  setUpKeyField();
  refreshDocuments();
  checkReady();
});
