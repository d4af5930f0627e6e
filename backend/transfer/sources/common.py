"""What the readers share: a file's text, a CSV's records with the line each starts on, zone
names, and putting tasks in the order an import writes them (a parent before its subtasks)."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator

from backend.models.task_calendar import KNOWN_ZONES
from backend.models.task_list import MAX_DEPTH
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
    that is its own ancestor, or that is more than `MAX_DEPTH` levels down, goes to the top
    level; each with a warning. Linear in the tasks, whatever the shape of their tree."""
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
    # A cycle: the first of its members found goes to the top. Each task is walked up once
    # (`state`: 1 on the walk in hand, 2 done), so a chain of any length is linear.
    state: dict[str, int] = {}
    for task in by_key.values():
        walked: list[PlannedTask] = []
        at: PlannedTask | None = task
        while at is not None and at.key not in state:
            state[at.key] = 1
            walked.append(at)
            at = by_key[at.parent_key] if at.parent_key is not None else None
        if at is not None and state[at.key] == 1:
            plan.warn(
                at.item,
                "parent_id",
                "parent_cycle",
                "It is its own ancestor (its parents form a cycle): imported at the top level",
            )
            at.parent_key = None
        for one in walked:
            state[one.key] = 2
    waiting: dict[str, list[PlannedTask]] = {}
    placed: dict[str, int] = {}  # key -> its depth (0: top level)

    def place(task: PlannedTask, depth: int) -> None:
        stack = [(task, depth)]
        while stack:
            one, below = stack.pop()
            if below > MAX_DEPTH:  # the tree's rule (ck_tasks_tree): at most 3 ancestors
                plan.warn(
                    one.item,
                    "parent_id",
                    "too_deep",
                    f"More than {MAX_DEPTH} levels below a top-level task: imported at the top "
                    "level",
                )
                one.parent_key, below = None, 0
            plan.tasks.append(one)
            placed[one.key] = below
            stack.extend((child, below + 1) for child in reversed(waiting.pop(one.key, [])))

    for task in by_key.values():
        if task.parent_key is None:
            place(task, 0)
        elif task.parent_key in placed:
            place(task, placed[task.parent_key] + 1)
        else:
            waiting.setdefault(task.parent_key, []).append(task)
