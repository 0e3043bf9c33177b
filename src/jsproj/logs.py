"""jsproj's log lines: the ``jsproj`` logger hierarchy, with time and level, as text or one JSON object per line.

The library logs through ``logging.getLogger("jsproj.…")`` (the daemon on
``jsproj.follow.daemon``) and configures nothing: an application's own logging
setup decides. The command line calls :func:`configure`, which writes each
record as one line -- never wrapped, whatever the terminal -- with every
password taken out (:func:`jsproj.redact.redact`).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg

from jsproj.redact import redact

FORMATS = ("text", "json")
ROOT = "jsproj"
FIELDS = "jsproj_fields"  # the LogRecord attribute :func:`say` puts its fields in


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """``2026-12-01T15:02:53.123+00:00 INFO jsproj.follow.daemon: message`` (a traceback on the lines after)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_time(record)} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time``, ``level``, ``logger``, ``message`` (and ``traceback``), then the
    record's fields (:func:`say`: ``daemon``, ``projection``, ``events``, ...) for a log search to filter on."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        for key, value in getattr(record, FIELDS, {}).items():
            entry.setdefault(key, value)  # the fixed keys above win over a field of the same name
        return json.dumps({k: redact(v) if isinstance(v, str) else v for k, v in entry.items()}, ensure_ascii=False)


def say(logger: logging.Logger, level: int, message: str, **fields: object) -> None:
    """Log ``message`` with ``fields`` (None ones left out): the text lines show the message, the JSON lines
    the message and each field as a key of its own."""
    logger.log(level, message, extra={FIELDS: {k: v for k, v in fields.items() if v is not None}})


class LineHandler(logging.Handler):
    """Writes each formatted record with ``write`` (a text line, newline added): stderr's by default."""

    def __init__(self, write: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.write = write or _stderr

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write(self.format(record))
        except Exception:  # noqa: BLE001 -- logging must never take the program down (logging's own rule)
            self.handleError(record)


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def configure(fmt: str = "text", *, verbose: bool = False, write: Callable[[str], None] | None = None) -> None:
    """Send the ``jsproj`` loggers' records (INFO and up; DEBUG with ``verbose``) to one handler in ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    logger = logging.getLogger(ROOT)
    for old in [h for h in logger.handlers if isinstance(h, LineHandler)]:
        logger.removeHandler(old)
    handler = LineHandler(write)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


@contextmanager
def writing_to(write: Callable[[str], None] | None = None, *, level: int = logging.NOTSET) -> Iterator[None]:
    """Meanwhile, the lines :func:`configure` set up are written with ``write`` (a progress bar's console; as
    before when None), those below ``level`` left out (a show whose progress or report says it all)."""
    handlers = [h for h in logging.getLogger(ROOT).handlers if isinstance(h, LineHandler)]
    before = [(h.write, h.level) for h in handlers]
    for handler in handlers:
        handler.write = write or handler.write
        handler.setLevel(max(level, handler.level))
    try:
        yield
    finally:
        for handler, (old, old_level) in zip(handlers, before, strict=True):
            handler.write = old
            handler.setLevel(old_level)


def log_warnings(conn: psycopg.Connection[Any], logger: logging.Logger) -> None:
    """Log the WARNINGs jsproj's SQL raises on ``conn`` (``jsproj: index ... is not kept by its rebuild``, a
    trigger left out, an owner not given): psycopg drops the notices of a connection with no handler, so they
    would reach only the server's log."""

    def handle(diag: psycopg.errors.Diagnostic) -> None:
        text = diag.message_primary or ""
        if diag.severity_nonlocalized == "WARNING" and text.startswith("jsproj: "):
            logger.warning(text.removeprefix("jsproj: "))

    conn.add_notice_handler(handle)
