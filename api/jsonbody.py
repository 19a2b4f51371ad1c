"""Reading JSON request bodies with a bound on how deep they nest.

The standard library's decoder recurses once per level of nesting, and so does everything
that walks the decoded value afterwards (GraphQL's coercion of variables, the storable-text
check, the encoders): 100,000 ``[`` in a 200 KB body end in a ``RecursionError`` far
from the request, which would answer a 500. The depth is measured on the raw text first,
in C-speed passes (escapes cut out, quotes and brackets kept by ``bytes.translate``,
strings dropped by splitting at quotes, then levels peeled by ``bytes.replace``), so a refused body is
never decoded and an accepted one costs a few milliseconds per megabyte more.

``Guard`` (api.middleware) applies the bound to every request body before
any route reads it; ``loads`` is the decoder for routes that read JSON themselves.
"""
from __future__ import annotations

import re
from itertools import accumulate
from typing import Any

from ledger import fastjson
from ledger.errors import BadRequestError

# Escapes go first (so an escaped quote is no quote); then only quotes and brackets are
# kept, and every other piece between quotes lies outside a string. All of it runs in C.
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_NOT_MARKS = bytes(b for b in range(256) if b not in b'"[]{}')
# Nesting does not care which kind of bracket it is (a mismatch is the decoder's to refuse).
_ONE_KIND = bytes.maketrans(b"{}", b"[]")
# Opening brackets count +1 and closing ones -1 in the running sum.
_STEP = {ord("["): 1, ord("]"): -1}
# Peeling passes before the exact running sum takes over (each pass costs one C scan).
_PEELS = 16


def nesting_depth(raw: bytes | str) -> int:
    """How deep the arrays and objects of the JSON text ``raw`` nest (0 for a scalar);
    brackets inside strings do not count."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if b"[" not in raw and b"{" not in raw:
        return 0
    if b"\\" in raw:
        raw = _ESCAPE.sub(b"", raw)
    marks = raw.translate(None, _NOT_MARKS)
    brackets = b"".join(marks.split(b'"')[::2]).translate(_ONE_KIND)
    # Each pass removes the innermost pairs, one level of every branch: a request body
    # (a few levels deep) is measured in a few passes, far cheaper than summing it.
    depth = 0
    while brackets and depth < _PEELS:
        peeled = brackets.replace(b"[]", b"")
        if len(peeled) == len(brackets):
            break
        brackets, depth = peeled, depth + 1
    return depth + max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def too_deep(max_depth: int) -> BadRequestError:
    return BadRequestError("json_too_deep", f"body: the JSON nests deeper than {max_depth} "
                           "levels of arrays and objects", field="body")


def loads(raw: bytes | str, max_depth: int) -> Any:
    """The JSON value of ``raw``; ``BadRequestError`` naming ``body`` when it nests deeper
    than ``max_depth`` (``json_too_deep``) or is not JSON (``invalid_input``)."""
    if nesting_depth(raw) > max_depth:
        raise too_deep(max_depth)
    try:
        return fastjson.loads(raw)
    except RecursionError:
        # Only with a bound set above what this interpreter's stack allows.
        raise too_deep(max_depth) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError("invalid_input", f"body: not valid JSON ({exc})",
                              field="body") from None
