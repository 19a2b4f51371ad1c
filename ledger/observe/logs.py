"""Log lines as JSON objects, one a line, for a log pipeline; the fields a reader joins on
(request id, job id, entry ik) are fields, not words of the message.

``log_fields(request_id=...)`` binds fields to everything logged inside it on this thread
or task (a context variable, so concurrent requests keep theirs apart); a record's own
``extra={...}`` fields are added too. Plain text stays the default (settings.log_format):
``ledger up`` is read by people."""
from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

_FIELDS: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("ledger_log_fields",
                                                                          default={})

# Attributes every LogRecord has: anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}


@contextmanager
def log_fields(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every record logged inside the block (None values are left out)."""
    token = _FIELDS.set({**_FIELDS.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _FIELDS.reset(token)


def current_log_fields() -> dict[str, Any]:
    return dict(_FIELDS.get())


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...bound fields, ...extra, "exc_info"?}``."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc)
                            .isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        event.update(_FIELDS.get())
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                event[key] = value
        if record.exc_info:
            event["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            event["stack_info"] = self.formatStack(record.stack_info)
        # default=str: an extra value of any type still makes one valid line.
        return json.dumps(event, default=str, ensure_ascii=False)


def use_json_logs(*loggers: logging.Logger) -> None:
    """Give every handler of the root logger and of ``loggers`` the JSON format; a root
    logger without a handler gets one on stderr."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
        if root.level == logging.WARNING:
            root.setLevel(logging.INFO)
    formatter = JsonFormatter()
    for logger in (root, *loggers):
        for handler in logger.handlers:
            handler.setFormatter(formatter)
