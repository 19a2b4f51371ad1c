"""Reading JSON request bodies with a bound on how deep they nest.

The standard library's decoder recurses once per level of nesting, and so does everything
that walks the decoded value afterwards (GraphQL's coercion of variables, the storable-text
check, the encoders): 100,000 ``[`` in a 200 KB body end in a ``RecursionError`` far
from the request, which would answer a 500. The depth is measured on the raw text first,
in C-speed passes (strings cut out by one regular expression, brackets kept by
``bytes.translate``, their running sum by ``itertools.accumulate``), so a refused body is
never decoded and an accepted one costs a few milliseconds per megabyte more.

``BodyDepthMiddleware`` (api.middleware) applies the bound to every request body before
any route reads it; ``loads`` is the decoder for routes that read JSON themselves.
"""
from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from ledger.errors import BadRequestError

# A JSON string: quote, then runs of ordinary bytes or escapes, then quote. An unclosed
# string is left in place; its brackets then count, and the decoder refuses it anyway.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Opening brackets count +1 and closing ones -1 in the running sum.
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def nesting_depth(raw: bytes | str) -> int:
    """How deep the arrays and objects of the JSON text ``raw`` nest (0 for a scalar);
    brackets inside strings do not count."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if not any(b in raw for b in (b"[", b"{")):
        return 0
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def too_deep(max_depth: int) -> BadRequestError:
    return BadRequestError("json_too_deep", f"body: the JSON nests deeper than {max_depth} "
                           "levels of arrays and objects", field="body")


def loads(raw: bytes | str, max_depth: int) -> Any:
    """The JSON value of ``raw``; ``BadRequestError`` naming ``body`` when it nests deeper
    than ``max_depth`` (``json_too_deep``) or is not JSON (``invalid_input``)."""
    if nesting_depth(raw) > max_depth:
        raise too_deep(max_depth)
    try:
        return json.loads(raw)
    except RecursionError:
        # Only with a bound set above what this interpreter's stack allows.
        raise too_deep(max_depth) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError("invalid_input", f"body: not valid JSON ({exc})",
                              field="body") from None
