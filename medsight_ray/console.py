"""What a run prints for people, and where everything else goes.

The console of ``train``, ``tune`` and ``zoo`` shows what a person acts on: progress,
the primary metric, each diagnosis as it fires, the summary. Everything else (Ray's
driver logs, every worker's output, Ray Data's plans, warnings) goes to
``OUT/logs/console.log``; Ray's own logs stay where Ray keeps them, and the console
says where.

How: :func:`session` moves the process's file descriptors 1 and 2 to the log file, so
that nothing (Python, C++ or a library's progress bar) reaches the terminal by
accident, and keeps a private copy of the terminal for :func:`say`. Processes other
than the driver (Train workers, Tune trials, the Train controller) mark a line for
people with :func:`emit`; the driver echoes marked lines from the stream Ray forwards
to it (all other lines still go to the log). ``--verbose`` turns all of this off:
Ray's output reaches the terminal as Ray prints it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from medsight_ray.errors import redact_all

#: Prefix of a line meant for the console, printed by a process other than the driver.
MARK = "[medsight] "
LOG_FILE = "console.log"
_HANDLER = "medsight_console"

_stream: TextIO | None = None


def say(text: str = "") -> None:
    """Print a line for people: on the terminal (never into the log redirection), with
    every URI in it redacted (:func:`medsight_ray.errors.redact_all`)."""
    stream = _stream or sys.stdout
    stream.write(redact_all(text) + "\n")
    stream.flush()


def emit(text: str) -> None:
    """From a worker, trial or controller process: a line the driver shows on the console."""
    # Written to the stream, not print()ed: Ray Train patches print() in its workers to
    # log every line twice (through its logger and to the wrapped stdout).
    for line in redact_all(text).splitlines():
        sys.stdout.write(f"{MARK}{line}\n")
    sys.stdout.flush()


def _echo_marked(data: dict[str, Any]) -> None:
    """Ray log-stream handler: show the marked lines of every process, unprefixed."""
    for line in data.get("lines", ()):
        at = line.find(MARK)
        if at >= 0:
            say(line[at + len(MARK):])


def _dispatcher() -> Any:
    """Ray's stream of every process's output lines, as the driver receives it (None
    when this Ray has none: then the log still holds every line)."""
    try:
        from ray._private.ray_logging import global_worker_stdstream_dispatcher
    except ImportError:
        return None
    return global_worker_stdstream_dispatcher


def echo_worker_lines() -> bool:
    """Within a :func:`session`, after ``ray.init(log_to_driver=True)``: echo marked lines
    of every Ray process to the console until the session ends. Returns False when
    this Ray has no stream to hook."""
    dispatcher = _dispatcher()
    if dispatcher is None:
        return False
    dispatcher.remove_handler(_HANDLER)
    dispatcher.add_handler(_HANDLER, _echo_marked)
    return True


def ray_logs_dir() -> str:
    """Where Ray keeps its own logs for this driver's session."""
    try:
        from ray._private import worker

        node = worker._global_node
        if node is not None:
            return node.get_logs_dir_path()
    except (ImportError, AttributeError):
        pass
    return "/tmp/ray/session_latest/logs on the head node"


@contextlib.contextmanager
def session(out: Path | None, verbose: bool = False) -> Iterator[Path | None]:
    """Within the block, the process's output goes to ``OUT/logs/console.log`` and only
    :func:`say` (and marked worker lines) reach the terminal. Yields the log file (None
    when ``verbose`` or ``out`` is None: nothing is redirected)."""
    global _stream
    if verbose or out is None:
        yield None
        return
    logs = Path(out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / LOG_FILE
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        saved = {fd: os.dup(fd) for fd in (1, 2)}
    except OSError:  # no real descriptors (an embedding host): leave output alone
        yield None
        return
    log = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - closed below
    # The terminal, for say(): a copy of fd 1 made before it is redirected. Under a
    # test's capture sys.stdout is no terminal; then say() keeps writing to it.
    previous = _stream
    real_stdout = _has_fd(sys.stdout, 1)
    _stream = os.fdopen(os.dup(saved[1]), "w", buffering=1, encoding="utf-8") if real_stdout else sys.stdout
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    logging.captureWarnings(True)
    root = logging.getLogger()
    file_handler = logging.StreamHandler(log)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    file_handler.addFilter(_redacting)
    root.addHandler(file_handler)
    try:
        yield log_path
    finally:
        dispatcher = _dispatcher()
        if dispatcher is not None:
            dispatcher.remove_handler(_HANDLER)
        sys.stdout.flush()
        sys.stderr.flush()
        root.removeHandler(file_handler)
        logging.captureWarnings(False)
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        if _stream is not previous and _stream is not sys.stdout:
            _stream.close()
        _stream = previous
        log.close()


def _redacting(record: logging.LogRecord) -> bool:
    """A log filter: the record's message with every URI redacted."""
    message = record.getMessage()
    if "://" in message:
        record.msg, record.args = redact_all(message), None
    return True


def _has_fd(stream: TextIO, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, OSError, ValueError):
        return False
