"""Typed errors of the ledger. Every failure a caller can see is one of these.

The API and the workers translate them to the wire unchanged (``code``, ``message``,
``retryable``), so the codes are part of our contract: never rename one.
"""
from __future__ import annotations


class LedgerError(Exception):
    """Base of every error the ledger reports to a caller."""

    typename = "InternalError"
    retryable = False

    def __init__(self, code: str, message: str, *, field: str | None = None,
                 index: int | None = None, retryable: bool | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        # Position of the failing entry in a batch, so a caller can say which one failed.
        self.index = index
        if retryable is not None:
            self.retryable = retryable

    def to_dict(self) -> dict:
        out = {"__typename": self.typename, "code": self.code, "message": self.message,
               "retryable": self.retryable}
        if self.field is not None:
            out["field"] = self.field
        if self.index is not None:
            out["index"] = self.index
        return out

    def at_index(self, index: int) -> "LedgerError":
        """The same error, located at entry ``index`` of a batch."""
        self.index = index
        if self.field is not None and not self.field.startswith("entries["):
            self.field = f"entries[{index}].{self.field}"
        if not self.message.startswith("entries["):
            self.message = f"entries[{index}]: {self.message}"
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class BadRequestError(LedgerError):
    """The request can never succeed as sent; retrying it is pointless."""

    typename = "BadRequestError"
    retryable = False


class NotFoundError(LedgerError):
    """Something the request names does not exist."""

    typename = "NotFoundError"
    retryable = False


class InternalError(LedgerError):
    """A transient fault (database unreachable, retries exhausted): retry with backoff."""

    typename = "InternalError"
    retryable = True


class SchemaError(BadRequestError):
    """A schema document is invalid; ``issues`` lists every problem with its path."""

    def __init__(self, issues: list[tuple[str, str]]):
        self.issues = issues
        text = "; ".join(f"{path}: {msg}" for path, msg in issues)
        super().__init__("invalid_schema", f"invalid schema: {text}",
                         field=issues[0][0] if issues else None)
