"""Parsing in a child process with a time and a memory limit: a hostile file (an inflation bomb, a pathological
table) fails alone, with a message, instead of stalling the worker or taking it down. Children fork from a
server process that already holds the dedoc pipeline, so each one starts in milliseconds."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import signal
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

from app.errors import ParseError, RagError
from ingest.parsing import ParseOptions, parse_to_markdown

CANCEL_CHECK_SECONDS = 0.2
OUT_OF_MEMORY_SHARE = 0.8  # of the limit in use when parsing fails: it failed for want of memory

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["ingest.warm_parser"])


def start_parse_server() -> None:
    """Start the children's fork server now, and wait until it has loaded dedoc (about 2.5 s on 2 cores),
    rather than at the first document, which would wait for it."""
    child = _CONTEXT.Process(target=int, name="parse-warm-up", daemon=True)  # does nothing, once the server is up
    child.start()
    child.join()


def parse_isolated(
    path: Path,
    kind: str,
    options: ParseOptions,
    timeout_seconds: float,
    memory_bytes: int,
    cancel: threading.Event | None = None,
) -> str:
    """`parse_to_markdown` in a child process; ParseError when it runs past `timeout_seconds`, past
    `memory_bytes` of memory, dies, or `cancel` is set (the worker is stopping)."""
    receive, send = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(
        target=_parse_child, args=(send, str(path), kind, options, memory_bytes), name="parse", daemon=True
    )
    child.start()
    send.close()  # the child's end: once the child is gone, receiving ends instead of waiting
    try:
        deadline = time.monotonic() + timeout_seconds
        while not receive.poll(min(CANCEL_CHECK_SECONDS, max(0.0, deadline - time.monotonic()))):
            if cancel is not None and cancel.is_set():
                raise ParseError("parsing was stopped: the worker is stopping")
            if time.monotonic() >= deadline:
                raise ParseError(
                    f"parsing took longer than {timeout_seconds:g} s (ingest.parse_timeout_seconds) and was stopped"
                )
        parsed, value = receive.recv()
    except EOFError:
        child.join(1)  # the pipe closes a moment before the exit code is known
        raise ParseError(
            f"the parser stopped without an answer (exit code {child.exitcode}): the document may need more than "
            f"{memory_bytes / 1e6:.0f} MB (ingest.parse_memory_bytes)"
        ) from None
    finally:
        receive.close()
        child.kill()
        _kill_group(child.pid)  # what the child started (Tesseract, LibreOffice)
        child.join()
    if parsed:
        return str(value)
    raise value


def _parse_child(send: Connection, path: str, kind: str, options: ParseOptions, memory_bytes: int) -> None:
    os.setpgid(0, 0)  # a process group of its own: the programs it starts are stopped with it
    # The data segment (heap and anonymous mappings): what parsing grows; the libraries' mappings are not counted.
    resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    try:
        result: tuple[bool, object] = (True, parse_to_markdown(Path(path), kind, options))
    except Exception as exc:
        # Running out of memory shows in many ways (MemoryError, ENOMEM, zlib's -4 inside "could not be read"):
        # a failure with the memory nearly used up is reported as what it is.
        if _data_bytes() >= OUT_OF_MEMORY_SHARE * memory_bytes:
            limit = f"{memory_bytes / 1e6:.0f} MB"
            result = (False, ParseError(f"parsing needs more than {limit} (ingest.parse_memory_bytes)"))
        elif isinstance(exc, RagError):
            result = (False, exc)
        else:  # a parser bug: this document fails, with what went wrong
            result = (False, ParseError(f"could not be processed ({type(exc).__name__}: {exc})"))
    send.send(result)
    send.close()


def _kill_group(pid: int | None) -> None:
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):  # nothing left in the group
        os.killpg(pid, signal.SIGKILL)


def _data_bytes() -> int:
    """This process's data segment now (Linux: /proc/self/statm, in pages)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[5]) * os.sysconf("SC_PAGE_SIZE")
