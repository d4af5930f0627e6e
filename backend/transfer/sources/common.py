"""What the readers share: a file's text, a CSV's records with the line each starts on, zone
names, and putting tasks in the order an import writes them (a parent before its subtasks)."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator

from backend.models.task_calendar import KNOWN_ZONES
from backend.transfer.plan import NotThisSource, Plan, PlannedTask

MAX_FIELD = 1024 * 1024  # one CSV cell, in characters (csv's default is 128 KiB)


def text_of(data: bytes, where: str = "file") -> str:
    """`data` as UTF-8 text (a BOM dropped); `NotThisSource` if empty or not UTF-8."""
    if not data.strip():
        raise NotThisSource(where, "The file is empty")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise NotThisSource(
            f"line {line}" if where == "file" else where, "Not UTF-8 text"
        ) from None


def head_text(data: bytes, size: int = 4096) -> str:
    """The start of `data` as text, for `looks_like` (a cut character ignored)."""
    return data[:size].decode("utf-8", errors="ignore").lstrip("\ufeff")


def records(text: str) -> Iterator[tuple[int, list[str]]]:
    """The CSV records of `text`, each with the physical line it starts on (1-based, as an
    editor numbers lines: a quoted cell spanning lines counts each of them)."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD))
    reader = csv.reader(io.StringIO(text, newline=""))
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise NotThisSource(f"line {start}", f"Not a readable CSV record ({error})") from None
        yield start, [cell.replace("\r\n", "\n") for cell in row]
        start = reader.line_num + 1


def known_zone(name: str | None) -> str | None:
    """`name` if it is an IANA zone a task may have, else None."""
    name = (name or "").strip()
    return name if name in KNOWN_ZONES else None


def digest(*parts: str) -> str:
    """A stable key from what a row says (its parts joined unambiguously)."""
    joined = "\x1f".join(part.replace("\x1f", "\x1f\x1f") for part in parts)
    return hashlib.sha256(joined.encode()).hexdigest()[:32]


def arrange(plan: Plan, tasks: list[PlannedTask]) -> None:
    """Put `tasks` into `plan.tasks`, each parent before its subtasks, otherwise in the order
    given: a second task with the same key is skipped, a task whose parent is not in the file,
    or that is its own ancestor, goes to the top level; each with a warning."""
    by_key: dict[str, PlannedTask] = {}
    for task in tasks:
        if task.key in by_key:
            plan.warn(task.item, None, "duplicate", f"A second item with the id {task.key!r}")
            plan.skipped += 1
            continue
        by_key[task.key] = task
    for task in by_key.values():
        if task.parent_key is not None and task.parent_key not in by_key:
            plan.warn(
                task.item,
                "parent_id",
                "parent_missing",
                f"Its parent {task.parent_key!r} is not in the file: imported at the top level",
            )
            task.parent_key = None
    for task in by_key.values():  # a cycle: the first of its members found goes to the top
        seen: set[str] = set()
        at: PlannedTask | None = task
        while at is not None and at.parent_key is not None and at.key not in seen:
            seen.add(at.key)
            at = by_key[at.parent_key]
        if at is not None and at.parent_key is not None:
            plan.warn(
                at.item,
                "parent_id",
                "parent_cycle",
                "It is its own ancestor (its parents form a cycle): imported at the top level",
            )
            at.parent_key = None
    waiting: dict[str, list[PlannedTask]] = {}
    placed: set[str] = set()

    def place(task: PlannedTask) -> None:
        stack = [task]
        while stack:
            one = stack.pop()
            plan.tasks.append(one)
            placed.add(one.key)
            stack.extend(reversed(waiting.pop(one.key, [])))

    for task in by_key.values():
        if task.parent_key is None or task.parent_key in placed:
            place(task)
        else:
            waiting.setdefault(task.parent_key, []).append(task)
