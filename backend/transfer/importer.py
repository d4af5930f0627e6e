"""The importer: a `Plan` validated as `POST /api/tasks` would validate each task (`analyse`: the
dry run and the import alike, one path, so what the dry run shows is what the import creates),
then written through the services REST uses, in chunks, each chunk one unit of work keyed by
where its items came from (`import_items`), so a chunk run twice adds nothing.

`analyse` reads nothing itself: what it needs of the database (the keys earlier imports
created, the caller's lists, filters and attachment use) is `Standing`, read by the caller's
services. Writing (`write_chunk`) reaches services only through `work.service(X)`."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from backend.contracts.saved_filters import FilterCreate
from backend.errors import AppError, Conflict, InvalidRequest, LimitReached, NotFound
from backend.models import TaskCreate
from backend.models.attachment import ATTACHMENTS_PER_TASK
from backend.models.imports import PREVIEW_TASKS, ImportCounts, ImportPreview
from backend.models.names import name_key
from backend.models.references import Action
from backend.models.saved_filter import FILTERS_PER_USER
from backend.models.sharing import COMMENTS_PER_TASK
from backend.models.task import TaskPreview
from backend.models.task_list import LISTS_PER_USER, SUBTASKS_PER_TASK, ListCreate
from backend.services.calendar.dav_statements import COMPLETED_AT_SENT, CREATED_DONE
from backend.services.sharing.lists import LIST_NOT_FOUND, ListService
from backend.services.statements.access import require
from backend.services.tasks.saved_filters import SavedFilterService
from backend.services.tasks.service import TaskService
from backend.services.tasks.task_children import TaskCommentService
from backend.services.tasks.task_placement import placement_of
from backend.services.tasks.task_statements import INSERTING
from backend.services.tasks.task_update import created
from backend.services.transfer.imports import ImportService, Known
from backend.services.unit_of_work import UnitOfWork
from backend.transfer.plan import Plan, PlannedTask

# The keys of `import_items`: an item's kind and its key in the source.
LIST, TASK, COMMENT, ATTACHMENT, FILTER = "list", "task", "comment", "attachment", "filter"


def item_key(kind: str, key: str) -> str:
    return f"{kind}:{key}"


@dataclass(frozen=True)
class Standing:
    """What `analyse` needs of the database: the keys of the plan's items already created (by
    this import: `mine`, by an earlier one: `known`), the caller's lists by name key, how many
    saved filters it has and its attachment use and quota."""

    known: dict[str, Known] = field(default_factory=dict)
    mine: dict[str, Known] = field(default_factory=dict)
    lists: dict[str, int] = field(default_factory=dict)
    filters: int = 0
    filter_names: frozenset[str] = frozenset()
    attachment_bytes_free: int | None = None


@dataclass
class Ready:
    """A task that passed our rules, in the order it is written."""

    planned: PlannedTask
    fields: dict[str, Any]
    root: bool
    parent_key: str | None  # its parent's key when that parent is written too
    list_key: str | None


@dataclass
class Analysis:
    plan: Plan
    tasks: list[Ready]
    lists: list[tuple[str, dict[str, Any]]]  # (key, `POST /api/lists`'s body) to create
    lists_reused: dict[str, int]  # a planned list's key -> an existing list (its name's, or
    # the one an earlier import created for it)
    filters: list[dict[str, Any]]
    counts: ImportCounts
    warnings: list[dict[str, Any]]
    lossy: list[dict[str, Any]]
    # A task's key an earlier run created -> its id (a subtask's parent that exists already).
    parents_known: dict[str, int] = field(default_factory=dict)

    def answer(self, user_id: str) -> ImportPreview:
        """The dry run's answer (every door's): what this analysis would create."""
        return ImportPreview(
            source=self.plan.source,
            counts=self.counts,
            warnings=self.warnings,
            lossy=self.lossy,
            preview=self.preview(user_id),
        )

    def preview(self, user_id: str) -> list[TaskPreview]:
        """The first tasks as they would be created (`TaskPreview`): the fields the write
        would store (`created`: the schedule as the service plans it), `user_id` the caller's,
        `list_id` a list that exists already (else null, the file's list in `list_name`),
        `parent_id` a parent that exists already, the subtask counts from the file."""
        names = {planned.key: planned.name for planned in self.plan.lists}
        by_key = {ready.planned.key: ready for ready in self.tasks}
        children: dict[str, list[Ready]] = {}
        for ready in self.tasks:
            if ready.parent_key is not None:
                children.setdefault(ready.parent_key, []).append(ready)
        out = []
        for ready in self.tasks[:PREVIEW_TASKS]:
            data = TaskCreate.model_validate(ready.fields)
            values = created(data)
            values["series_id"] = None  # drawn when written
            completed_at = ready.planned.completed_at if data.completed else None
            top, seen = ready, {ready.planned.key}
            while top.parent_key is not None and top.parent_key in by_key:
                if top.parent_key in seen:
                    break
                seen.add(top.parent_key)
                top = by_key[top.parent_key]
            list_id = None if top.parent_key is not None else top.fields.get("list_id")
            list_name = names.get(top.list_key) if top.list_key is not None else None
            if top.list_key is not None and top.parent_key is None:
                list_id = self.lists_reused.get(top.list_key, list_id)
            parent_id = None
            if ready.parent_key is not None and ready.parent_key not in by_key:
                parent_id = self.parents_known.get(ready.parent_key)
            mine = children.get(ready.planned.key, [])
            out.append(
                TaskPreview.model_validate(
                    {
                        **values,
                        "user_id": user_id,
                        "completed_at": completed_at,
                        "list_id": list_id,
                        "parent_id": parent_id,
                        "subtask_count": len(mine),
                        "open_subtask_count": sum(
                            1 for child in mine if not child.fields.get("completed")
                        ),
                        "list_name": list_name,
                        "file_key": ready.planned.key,
                        "parent_file_key": ready.parent_key,
                    }
                )
            )
        return out


def _warning(item: str, field_: str | None, code: str, message: str) -> dict[str, Any]:
    return {"item": item, "field": field_, "code": code, "message": message}


def _refusal(error: ValidationError) -> tuple[str | None, str]:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    return where or None, str(first.get("msg", "invalid"))


def _depth(task: PlannedTask, by_key: dict[str, PlannedTask]) -> int:
    depth, seen, parent = 0, {task.key}, task.parent_key
    while parent is not None and parent in by_key and parent not in seen:
        seen.add(parent)
        depth += 1
        parent = by_key[parent].parent_key
    return depth


def _unparent_the_unplaceable(
    ready: list[Ready],
    by_key: dict[str, PlannedTask],
    done: dict[str, Known],
    warnings: list[dict[str, Any]],
    list_id: int | None,
) -> None:
    """A subtask whose parent is not written (refused after it, listed nowhere) or whose
    parents loop goes to the top level, with a warning (a reader should have done so)."""
    written = {r.planned.key for r in ready}
    there = {key.partition(":")[2] for key in done if key.startswith(f"{TASK}:")}
    for r in ready:
        chain, parent, placeable = {r.planned.key}, r.parent_key, True
        while parent is not None and parent not in there:
            if parent in chain or parent not in written:
                placeable = False
                break
            chain.add(parent)
            parent = by_key[parent].parent_key
        if placeable:
            continue
        warnings.append(
            _warning(
                r.planned.item,
                "parent",
                "parent_missing",
                "Its parent loops or is not written: top level",
            )
        )
        r.parent_key, r.root, r.list_key = None, True, r.planned.list_key
        if r.list_key is None and list_id is not None:
            r.fields["list_id"] = list_id


def plan_keys(plan: Plan) -> list[str]:
    """Every item key of `plan` (what `Standing.known` is read for)."""
    keys = [item_key(LIST, item.key) for item in plan.lists]
    for task in plan.tasks:
        keys.append(item_key(TASK, task.key))
        keys.extend(item_key(COMMENT, c.key) for c in task.comments)
        keys.extend(item_key(ATTACHMENT, a.key) for a in task.attachments)
    keys.extend(item_key(FILTER, str(f["key"])) for f in plan.filters)
    return keys


def analyse(plan: Plan, standing: Standing, zone: str, list_id: int | None) -> Analysis:
    """What the import of `plan` creates, refuses and skips; `LimitReached` (nothing to be
    written) when it would take the caller past a limit."""
    warnings = [_warning(w.item, w.field, w.code, w.message) for w in plan.warnings]
    counts = ImportCounts(skipped=plan.skipped)
    done = {**standing.known, **standing.mine}

    def seen(kind: str, key: str) -> bool:
        """Created before: an earlier import's counts as already imported."""
        full = item_key(kind, key)
        if full in standing.known:
            counts.already_imported += 1
        return full in done

    lists: list[tuple[str, dict[str, Any]]] = []
    reused: dict[str, int] = {}
    # A planned list that cannot be created as named goes: a name we refuse (empty, too long,
    # a control character) to no list (`None`), a name another new list of the file has to
    # that list (its key); its tasks follow it, with a warning. Else its ListCreate would fail
    # in the runner after the dry run said it would import.
    moved: dict[str, str | None] = {}
    new_names: dict[str, str] = {}
    for planned in plan.lists:
        if seen(LIST, planned.key):
            reused[planned.key] = done[item_key(LIST, planned.key)].row_id
            continue
        named = name_key(planned.name)
        existing = standing.lists.get(named)
        if existing is not None:
            reused[planned.key] = existing
            continue
        try:
            ListCreate.model_validate({"name": planned.name})
        except ValidationError as error:
            _, message = _refusal(error)
            warnings.append(
                _warning(
                    planned.item or f"list {planned.key}",
                    "name",
                    "invalid",
                    f"{message}: its tasks go to none",
                )
            )
            moved[planned.key] = None
            continue
        if named in new_names:
            moved[planned.key] = new_names[named]
            message = "A second list of that name: its tasks go to the first"
            warnings.append(
                _warning(planned.item or f"list {planned.key}", "name", "duplicate", message)
            )
            continue
        new_names[named] = planned.key
        body = {"name": planned.name, **planned.fields}
        try:
            ListCreate.model_validate(body)
        except ValidationError as error:
            where, message = _refusal(error)
            # its other fields refused: its name alone, with a warning
            warnings.append(_warning(planned.item or planned.name, where, "invalid", message))
            body = {"name": planned.name}
        lists.append((planned.key, body))
    for planned_task in plan.tasks:
        if planned_task.list_key in moved:
            planned_task.list_key = moved[planned_task.list_key]
    if len(standing.lists) + len(lists) > LISTS_PER_USER:
        raise LimitReached(
            f"The import adds {len(lists)} lists to your {len(standing.lists)}, past the most "
            f"there can be ({LISTS_PER_USER})"
        )
    counts.lists = len(lists) + sum(1 for p in plan.lists if item_key(LIST, p.key) in standing.mine)

    by_key = {task.key: task for task in plan.tasks}
    refused: set[str] = set()
    ready: list[Ready] = []
    children: dict[str | None, int] = {}  # subtasks by their top-level task's key
    roots_of: dict[str, str] = {}  # a written task's key -> its top-level task's
    attachment_bytes = 0
    for task in plan.tasks:
        fields = dict(task.fields)
        fields.setdefault("time_zone", zone)
        parent_key = task.parent_key
        if parent_key is not None and (parent_key in refused or parent_key not in by_key):
            what = "was skipped" if parent_key in refused else "is not in the file"
            warnings.append(
                _warning(task.item, "parent", "parent_missing", f"Its parent {what}: top level")
            )
            parent_key = None
        if parent_key is None and task.list_key is None and list_id is not None:
            fields["list_id"] = list_id
        try:
            data = TaskCreate.model_validate(fields)
            created(data)  # the schedule's rules (an RRULE we refuse)
            if parent_key is not None and data.recurrence is not None:
                raise InvalidRequest.at("recurrence", "Only top-level tasks recur")
        except ValidationError as error:
            where, message = _refusal(error)
            warnings.append(_warning(task.item, where, "invalid", message))
            refused.add(task.key)
            counts.skipped += 1
            continue
        except AppError as error:
            detail = (error.details or [{}])[0]
            where = str(detail.get("field", "")).removeprefix("body.") or None
            warnings.append(_warning(task.item, where, "invalid", error.message))
            refused.add(task.key)
            counts.skipped += 1
            continue
        if seen(TASK, task.key):
            for comment in task.comments:
                seen(COMMENT, comment.key)
            for attachment in task.attachments:
                seen(ATTACHMENT, attachment.key)
            continue
        # The limit is per top-level task at every depth (task_tree's `tree_full`), as the
        # database counts it: counted per direct parent, a tree of 100 children with 2
        # subtasks each passed here and failed the import its dry run had passed.
        root = parent_key if parent_key is None else roots_of.get(parent_key, parent_key)
        roots_of[task.key] = task.key if root is None else root
        children[root] = children.get(root, 0) + 1
        if root is not None and children[root] > SUBTASKS_PER_TASK:
            raise LimitReached(
                f"{task.item}: its top-level task would have more than {SUBTASKS_PER_TASK} "
                "subtasks at every depth, the most there can be"
            )
        if len(task.comments) > COMMENTS_PER_TASK:
            raise LimitReached(
                f"{task.item}: more than {COMMENTS_PER_TASK} comments, the most a task holds"
            )
        if len(task.attachments) > ATTACHMENTS_PER_TASK:
            raise LimitReached(
                f"{task.item}: more than {ATTACHMENTS_PER_TASK} files, the most a task holds"
            )
        attachment_bytes += sum(len(a.data) for a in task.attachments)
        list_key = task.list_key if parent_key is None else None
        ready.append(Ready(task, fields, parent_key is None, parent_key, list_key))
    _unparent_the_unplaceable(ready, by_key, done, warnings, list_id)
    free = standing.attachment_bytes_free
    if free is not None and attachment_bytes > free:
        raise LimitReached(
            f"The import's files take {attachment_bytes} bytes, past the {free} left of your "
            "attachments' quota"
        )
    counts.tasks = len(ready) + sum(1 for t in plan.tasks if item_key(TASK, t.key) in standing.mine)
    counts.comments = sum(len(r.planned.comments) for r in ready)
    counts.attachments = sum(len(r.planned.attachments) for r in ready)

    filters = []
    for planned_filter in plan.filters:
        where = str(planned_filter.get("item", f"filters:{planned_filter['key']}"))
        try:
            FilterCreate.model_validate(
                {"name": planned_filter["name"], "query": planned_filter["query"]}
            )
        except ValidationError as error:
            field_, message = _refusal(error)
            warnings.append(_warning(where, field_, "invalid", message))
            counts.skipped += 1
            continue
        if seen(FILTER, str(planned_filter["key"])):
            continue
        if name_key(str(planned_filter["name"])) in standing.filter_names:
            message = "You have a saved filter of that name: yours is kept"
            warnings.append(_warning(where, "name", "exists", message))
            counts.skipped += 1
            continue
        filters.append(planned_filter)
    if standing.filters + len(filters) > FILTERS_PER_USER:
        raise LimitReached(
            f"The import adds {len(filters)} saved filters to your {standing.filters}, past "
            f"the most there can be ({FILTERS_PER_USER})"
        )
    counts.filters = len(filters)

    # Written in an order that keeps each list's order: a new top-level task goes first, a new
    # subtask last, so top-level tasks are written last to first, subtasks first to last, and
    # every parent before its subtasks.
    index = {id(r): n for n, r in enumerate(ready)}

    def order(r: Ready) -> float:
        return r.planned.order if r.planned.order is not None else float(index[id(r)])

    roots = sorted((r for r in ready if r.root), key=order, reverse=True)
    rest = sorted(
        (r for r in ready if not r.root), key=lambda r: (_depth(r.planned, by_key), order(r))
    )
    lossy = [
        {"what": entry.what, "count": entry.count, "example": entry.example}
        for entry in plan.lossy.values()
    ]
    parents_known = {
        r.parent_key: done[item_key(TASK, r.parent_key)].row_id
        for r in ready
        if r.parent_key is not None and item_key(TASK, r.parent_key) in done
    }
    return Analysis(
        plan, roots + rest, lists, reused, filters, counts, warnings, lossy, parents_known
    )


def standing_of(
    imports: ImportService,
    lists: ListService,
    filters: SavedFilterService,
    plan: Plan,
    import_id: int | None = None,
) -> Standing:
    """`Standing` read through the caller's services (a dry run's route, a runner's chunk)."""
    known = imports.known(plan.source, plan_keys(plan))
    mine: dict[str, Known] = {}
    if import_id is not None:
        for kind in (LIST, TASK, COMMENT, ATTACHMENT, FILTER):
            for row in imports.created(import_id, kind):
                mine[row.key] = Known(kind, int(row.row_id))
        known = {key: value for key, value in known.items() if key not in mine}
    by_name = {name_key(row.name): int(row.id) for row in lists.all() if _owned(row, lists)}
    saved = filters.all()
    return Standing(
        known, mine, by_name, len(saved), frozenset(name_key(row.name) for row in saved)
    )


def _owned(row: Any, lists: ListService) -> bool:
    owner = getattr(row, "user_id", None)
    return owner is None or owner == lists.user_id


class KeysTaken(Exception):
    """Another import of the same items keyed some of this chunk's first (the two analysed
    before either wrote): the chunk rolls back, and the run, analysed again, counts them as
    `already_imported` (the key's constraint, not a check before the write, decides)."""


@dataclass
class Written:
    """What a chunk wrote: the tasks' ids by key (for their subtasks in later chunks)."""

    task_ids: dict[str, int] = field(default_factory=dict)
    list_ids: dict[str, int] = field(default_factory=dict)


def write_lists(work: UnitOfWork, import_id: int, analysis: Analysis, written: Written) -> None:
    """Create the plan's new lists and filters (the first chunk's)."""
    lists: ListService = work.service(ListService)
    items: list[tuple[str, str, int, bool]] = []
    for key, body in analysis.lists:
        row = lists.create(ListCreate.model_validate(body))
        items.append((item_key(LIST, key), LIST, int(row.id), False))
        written.list_ids[key] = int(row.id)
    if analysis.filters:
        filters: SavedFilterService = work.service(SavedFilterService)
        for planned in analysis.filters:
            row = filters.create(
                FilterCreate.model_validate({"name": planned["name"], "query": planned["query"]})
            )
            items.append((item_key(FILTER, str(planned["key"])), FILTER, int(row.id), False))
    imports: ImportService = work.service(ImportService)
    if imports.record_many(import_id, analysis.plan.source, items) < len(items):
        raise KeysTaken


def write_chunk(
    work: UnitOfWork,
    import_id: int,
    analysis: Analysis,
    chunk: Sequence[Ready],
    written: Written,
    store: Any = None,
) -> None:
    """Write `chunk`'s tasks (their comments and files with them) in `work`, keyed."""
    tasks: TaskService = work.service(TaskService)
    imports: ImportService = work.service(ImportService)
    comments: TaskCommentService = work.service(TaskCommentService)
    source = analysis.plan.source
    items: list[tuple[str, str, int, bool]] = []
    for ready in chunk:
        fields = dict(ready.fields)
        if ready.parent_key is not None:
            fields.pop("list_id", None)  # a subtask is in its parent's list
            fields["parent_id"] = written.task_ids[ready.parent_key]
        elif ready.list_key is not None:
            list_id = written.list_ids.get(ready.list_key) or analysis.lists_reused.get(
                ready.list_key
            )
            if list_id is not None:
                fields["list_id"] = list_id
        data = TaskCreate.model_validate(fields)
        values, inserting = created(data), INSERTING
        completed_at = ready.planned.completed_at
        if data.completed and completed_at is not None:
            values[COMPLETED_AT_SENT.key], inserting = completed_at, CREATED_DONE
        row = tasks.write_new(data, values, placement_of(data, None), (), inserting)
        task_id = int(row.id)
        written.task_ids[ready.planned.key] = task_id
        items.append((item_key(TASK, ready.planned.key), TASK, task_id, ready.root))
        for comment in ready.planned.comments:
            made = comments.add(task_id, {"body": comment.body}, comment.created_at)
            items.append((item_key(COMMENT, comment.key), COMMENT, int(made.id), False))
        if ready.planned.attachments and store is not None:
            for attachment in ready.planned.attachments:
                made = store(work, task_id, attachment)
                items.append((item_key(ATTACHMENT, attachment.key), ATTACHMENT, made, False))
    if imports.record_many(import_id, source, items) < len(items):
        raise KeysTaken()


def store_attachment(settings: Any) -> Any:
    """How a chunk stores a planned file: its bytes into the storage, then its row as an upload
    records it (the quota checked in the row's statement)."""
    from backend.services.tasks.attachments import AttachmentService
    from backend.storage.app import storage_for, store_upload

    storage = storage_for(settings)

    def store(work: UnitOfWork, task_id: int, attachment: Any) -> int:
        stored = store_upload(
            storage,
            io.BytesIO(attachment.data),
            attachment.file_name,
            max_bytes=settings.attachments_max_file_bytes,
        )
        service: AttachmentService = work.service(AttachmentService)
        row = service.record(task_id, stored, quota=settings.attachments_quota_bytes)
        return int(row.id)

    return store


def check_list(lists: ListService, list_id: int) -> None:
    """The answer `POST /api/tasks` gives for a `list_id` the caller cannot add to: none it
    can read is 404, one it reads below editor 403."""
    row = lists.get(list_id)
    require(row.role, Action.TASK_WRITE, NotFound(LIST_NOT_FOUND))


def trash_roots(tasks: TaskService, imports: ImportService, import_id: int) -> None:
    """Trash every task `import_id` created: its roots, their subtasks with them."""
    roots = [int(item.row_id) for item in imports.created(import_id, TASK) if item.root]
    if roots:
        tasks.delete_many(roots, last=False)


def undo(
    imports: ImportService,
    tasks: TaskService,
    lists: ListService,
    filters: SavedFilterService,
    import_id: int,
) -> Any:
    """Trash every task `import_id` created that the caller may still delete (the top-level
    ones: their subtasks go with them; as `DELETE /api/tasks/{id}`, a shared list's too),
    then delete the lists it created that hold no task then and the filters it created, forget
    its keys and mark it undone; what it could not remove (a task out of the caller's reach or
    deleted since, a list holding other tasks) is added to the import's warnings. 409 unless
    `done`. The caller holds the commit (several writes)."""
    row = imports.undoing(import_id)
    if row.state != "done":
        raise Conflict(f"Only a done import can be undone; this one is {row.state}")
    roots = [int(task_id) for task_id in row.roots]
    imports.forget_ahead(import_id)
    trashed = tasks.delete_many(roots, last=False) if roots else set()
    left: list[dict[str, Any]] = []
    missed = [task_id for task_id in roots if task_id not in trashed]
    if missed:
        shown = ", ".join(str(task_id) for task_id in missed[:20])
        left.append(
            _warning(
                "tasks",
                None,
                "not_undone",
                f"{len(missed)} task(s) not trashed: deleted since, or no longer yours to "
                f"delete (ids {shown})",
            )
        )
    filters.delete_many_ahead([int(filter_id) for filter_id in row.filters])
    created_lists = [int(list_id) for list_id in row.lists]
    deleted = lists.delete_empty(created_lists)
    for list_id in created_lists:
        if list_id not in deleted:
            message = "The list it created holds other tasks (or was deleted): kept"
            left.append(_warning(f"lists/{list_id}", None, "list_kept", message))
    done = imports.undone(import_id, left)
    if done is None:
        raise Conflict("The import changed while it was being undone; retry")
    return done
