"""The fenced blocks of a Markdown page, and which of its shell blocks a reader's shell runs:
every `bash` block unless the line right above it is `<!-- not run: <reason> -->`."""

from __future__ import annotations

import re
from dataclasses import dataclass

NOT_RUN = re.compile(r"^<!-- not run: (?P<reason>\S.*?) -->$")
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+)(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Block:
    info: str  # the fence's language
    body: str
    not_run: str | None  # the reason given above it, if any


def blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, with the `not run` reason right above it."""
    found: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        above = NOT_RUN.match(lines[i - 1].strip()) if i else None
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != fence:
            body.append(lines[i].removeprefix(indent))
            i += 1
        found.append(
            Block(opening["info"].strip(), "\n".join(body) + "\n", above and above["reason"])
        )
        i += 1
    return found


def runnable(text: str) -> list[str]:
    return [b.body for b in blocks(text) if b.info == "bash" and b.not_run is None]
