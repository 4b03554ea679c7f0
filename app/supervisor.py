"""`make run` (`python -m app run`): the API and the worker as child processes of one supervisor.

A child that dies is started again, after a delay that doubles with each run shorter than `SETTLE_SECONDS`
(up to `MAX_BACKOFF_SECONDS`); one that exits by itself with an error that soon after its very first start
has a setup problem (its log says which), so the supervisor stops instead. SIGINT or SIGTERM stops both, and
whatever they started, within `STOP_SECONDS`: each child leads a process group of its own, which gets SIGTERM,
then SIGKILL."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

log = logging.getLogger("app.supervisor")

SETTLE_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 60.0
STOP_SECONDS = 8.0  # then SIGKILL: a worker stopped in the middle of a batch loses nothing by it
POLL_SECONDS = 0.2


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    started_at: float = 0.0
    quick_exits: int = 0  # runs in a row shorter than SETTLE_SECONDS
    restart_at: float = 0.0


def supervise(commands: dict[str, list[str]]) -> int:
    """Run `commands` (name -> argv) until SIGINT/SIGTERM (exit code 0) or a setup failure (1)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    children = [Child(name, command) for name, command in commands.items()]
    exit_code = 0
    try:
        for child in children:
            _start(child)
        while not stop.wait(POLL_SECONDS):
            for child in children:
                if not _keep_running(child):
                    exit_code = 1
                    stop.set()
    finally:
        _stop_all(children)
    return exit_code


def _keep_running(child: Child) -> bool:
    """Start `child` again when it is due; False when it failed right at its first start."""
    now = time.monotonic()
    if child.process is None:
        if now >= child.restart_at:
            _start(child)
        return True
    code = child.process.poll()
    if code is None:
        return True
    _kill_group(child.process)  # nothing it started outlives it
    child.process = None
    ran = now - child.started_at
    if code > 0 and ran < SETTLE_SECONDS and child.starts == 1:  # it gave up by itself: a setup problem
        log.error(
            "the %s exited with code %s %.0f s after starting; stopping (its log above says why)", child.name, code, ran
        )
        return False
    child.quick_exits = child.quick_exits + 1 if ran < SETTLE_SECONDS else 0
    delay = min(MAX_BACKOFF_SECONDS, 2.0**child.quick_exits)
    child.restart_at = now + delay
    log.warning("the %s exited with code %s after %.0f s; starting it again in %.0f s", child.name, code, ran, delay)
    return True


def _start(child: Child) -> None:
    # A process group of its own: the supervisor forwards signals, and stops the child's own children with it.
    child.process = subprocess.Popen(child.command, start_new_session=True, preexec_fn=_die_with_parent)
    child.starts += 1
    child.started_at = time.monotonic()
    log.info("started the %s (pid %d)", child.name, child.process.pid)


def _stop_all(children: list[Child]) -> None:
    running = [child.process for child in children if child.process is not None]
    for process in running:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("pid %d did not stop within %.0f s of SIGTERM; killing it", process.pid, STOP_SECONDS)
        _kill_group(process)
        process.wait()
    log.info("stopped")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    _signal_group(process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
        os.killpg(process.pid, signum)


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the supervisor dies, even by SIGKILL."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
