"""The schemas, GraphQL documents and variables of the seed documents, read from the seed
files themselves (tests/fixtures/seeds/, copies of ../shared/seeds/).

The seeds are documentation pages flattened to text: a JSON document or a GraphQL
operation starts on a line of its own and ends at its matching brace, which may be followed
by prose on the same line (seed 000: ``}Marking users with ...``). The docs elide parts of
some documents as ``{...}`` or ``{...other line}``; those parse here as
``{"...": "<what was elided>"}`` so a test sees exactly what it has to supply.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEEDS = Path(__file__).resolve().parent / "fixtures" / "seeds"

ELIDED = "..."
_OPERATION = re.compile(r"^(mutation|query|subscription)\s*([A-Za-z_]\w*)?\s*[({]")
_UNION = re.compile(r"^union\s+[A-Za-z_]\w*\s*=")
_ELISION = re.compile(r"\{\s*\.\.\.([^{}\"]*)\}")
_VARIABLE = re.compile(r"\$([A-Za-z_]\w*)\s*:")


@dataclass
class Block:
    """One document of a seed, in the order of the file."""

    seed: str  # "002"
    index: int  # position among the seed's blocks, from 0
    line: int  # 1-based line of its first character
    kind: str  # "graphql", "sdl", "json", or "text" (starts like JSON, is not JSON)
    text: str
    label: str  # the nearest non-blank line before it: the docs' caption, if any
    value: Any = None  # the parsed JSON, elisions included
    elided: list[str] = field(default_factory=list)
    variables: "Block | None" = None  # for a GraphQL operation: the JSON that follows it

    @property
    def name(self) -> str:
        return f"seed {self.seed} block {self.index} (line {self.line})"

    @property
    def operation(self) -> str | None:
        match = _OPERATION.match(self.text) if self.kind == "graphql" else None
        return match.group(2) if match else None

    @property
    def variable_names(self) -> set[str]:
        return set(_VARIABLE.findall(self.text)) if self.kind == "graphql" else set()


def seed_files() -> list[Path]:
    return sorted(SEEDS.glob("0*.txt"))


def _matching_brace(text: str, start: int) -> int:
    """The index just past the brace closing the one at ``start`` (strings skipped), or
    -1 if it never closes."""
    depth, i, in_string = 0, start, False
    while i < len(text):
        c = text[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def _parse_json(text: str) -> tuple[Any, list[str]] | None:
    elided = [m.group(1).strip() for m in _ELISION.finditer(text)]
    stand_in = _ELISION.sub(lambda m: json.dumps({ELIDED: m.group(1).strip()}), text)
    try:
        return json.loads(stand_in), elided
    except json.JSONDecodeError:
        return None


def extract(path: Path) -> list[Block]:
    """Every block of one seed file, in order; a JSON block that follows a GraphQL
    operation and whose keys are among its variables is that operation's ``variables``."""
    text = path.read_text()
    seed = path.name[:3]
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    blocks: list[Block] = []
    label = ""
    pos = 0
    for number, start in enumerate(line_starts, 1):
        if start < pos:
            continue
        end_of_line = text.find("\n", start)
        end_of_line = len(text) if end_of_line < 0 else end_of_line
        line = text[start:end_of_line]
        stripped = line.strip()
        at = start + len(line) - len(line.lstrip())
        block = None
        if stripped.startswith("{") or _OPERATION.match(stripped):
            first = text.index("{", at)
            end = _matching_brace(text, first)
            if end > 0:
                block = Block(seed, len(blocks), number, "graphql" if stripped[0] != "{"
                              else "json", text[at:end], label)
                pos = end
        elif _UNION.match(stripped):
            end = end_of_line
            while True:
                nxt = text.find("\n", end + 1)
                following = text[end + 1:nxt if nxt >= 0 else len(text)]
                if not re.fullmatch(r"\s*[A-Za-z_]\w*(\s*\|\s*[A-Za-z_]\w*)*\s*", following):
                    break
                end = nxt if nxt >= 0 else len(text)
            block = Block(seed, len(blocks), number, "sdl", text[at:end].strip(), label)
            pos = end
        if block is None:
            if stripped:
                label = stripped
            continue
        if block.kind == "json":
            parsed = _parse_json(block.text)
            if parsed is None:
                block.kind = "text"
            else:
                block.value, block.elided = parsed
        blocks.append(block)
        label = ""
    _pair_variables(blocks)
    return blocks


def _pair_variables(blocks: list[Block]) -> None:
    operation = None
    for block in blocks:
        if block.kind == "graphql":
            operation = block
        elif (block.kind == "json" and operation is not None and operation.variables is None
              and isinstance(block.value, dict) and block.value
              and set(block.value) <= operation.variable_names):
            operation.variables = block


def all_blocks() -> list[Block]:
    return [b for path in seed_files() for b in extract(path)]
