"""The sending modes only the task service uses (`TaskSending`, its base), beside what every service
has (backend/db/scope.py): `_write_then` (statements written from the write's rows), `_steps` (a
bulk request in one message, a step that wrote nothing refused without a server log error),
`_write_or_stored` (the stored row when the write matched none) and `_begin_again`. Each binds
through `Scoped._bind`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import DateTime, Enum

from backend.db.scope import OWNER, Bound, Scoped
from backend.db.sender import Rows, inline, own_ctes, render


@dataclass(frozen=True)
class Then:
    """After a write: a CTE of its rows (`w`) when it commits here, else `alone`."""

    from_write: Bound
    alone: Bound


@dataclass(frozen=True)
class Step:
    """One statement of `_steps` writing `task_id`; if it writes nothing, `reason` says why."""

    statement: Any
    values: Mapping[str, Any]
    task_id: int
    reason: Any = None


class StepRefused(Exception):
    """A step wrote nothing: `reason` as its step said (None: the task is missing)."""

    def __init__(self, index: int, reason: str | None) -> None:
        super().__init__(reason or "missing")
        self.index = index
        self.reason = reason


# One step of `task_api_steps` (migration 0027): its row as JSON, else why (NULL: a missing task).
_STEP = (
    "WITH {own}r AS ({statement}), j AS (SELECT to_jsonb(r) AS row FROM r WHERE r.id = %({id})s) "
    "SELECT (SELECT row FROM j), CASE WHEN NOT EXISTS (SELECT FROM j) THEN {reason} END"
)
# `_write_then`: statements that write from the write's rows (`w`) in its statement.
_WRITE_THEN = "w AS ({sql}), {thens}r AS (SELECT * FROM w)"
# The written row, or the stored one when the write matched none (one snapshot).
_WRITTEN_OR_STORED = (
    "w AS ({sql}), s AS ({stored}), r AS (SELECT w.*, true AS task_api_written FROM w "
    "UNION ALL SELECT s.*, false FROM s WHERE NOT EXISTS (SELECT FROM w))"
)


def decoded(columns: Any, row: Mapping[str, Any]) -> SimpleNamespace:
    """A bulk step's JSON row typed as the driver types it."""
    types = {column.key: column.type for column in columns}
    values: dict[str, Any] = {}
    for name, value in row.items():
        type_ = types.get(name)
        if value is not None and isinstance(type_, DateTime):
            value = datetime.fromisoformat(value)
        elif value is not None and isinstance(type_, Enum) and type_.enum_class is not None:
            value = type_.enum_class(value)
        values[name] = value
    return SimpleNamespace(**values)


class TaskSending(Scoped):
    """A `Scoped` service with the task service's own sending modes (module docstring)."""

    def _write_then(
        self,
        statement: Any,
        then: Then | tuple[Then, ...] | None,
        *,
        last: bool = False,
        **values: Any,
    ) -> Rows:
        """`_write` with `then`: in its statement when it commits here, else at the COMMIT."""
        # `_bind`, inline, as `_write` does (tests/test_walk.py counts a write's path).
        if isinstance(statement, Bound):
            statement, values = statement.statement, {**statement.values, **values}
        values = {**values, OWNER: self.user_id}
        if not then:
            return self._send.write(statement, values, last=last)
        thens = (then,) if isinstance(then, Then) else then
        if last and self._send.can_finish:
            parts: dict[str, Any] = {}
            then_values: dict[str, Any] = {}
            for index, each in enumerate(thens):
                parts[f"t{index}"], bound = self._bind(each.from_write, {})
                then_values.update(bound)
            ctes = "".join(f"t{index} AS ({{t{index}}}), " for index in range(len(thens)))
            around = (_WRITE_THEN.replace("{thens}", ctes), parts, then_values)
            return self._send.write(statement, values, last=True, around=around)
        rows = self._send.write(statement, values)
        for each in thens:
            self._at_commit(each.alone)
        return rows

    def _write_or_stored(self, write: Any, stored: Any, **values: Any) -> tuple[Any, bool] | None:
        """`write` committing the request, with `stored` (the row before it) in one statement:
        (written, True), else (stored or None, False); None if it cannot commit here."""
        if not self._send.can_finish:
            return None
        write, values = self._bind(write, values)
        stored, values = self._bind(stored, values)
        around = (_WRITTEN_OR_STORED, {"stored": stored}, values)
        rows = self._send.write(write, values, last=True, around=around)
        if not rows:
            return None, False
        row = dict(rows[0]._mapping)
        written = bool(row.pop("task_api_written"))
        return SimpleNamespace(**row), written

    def _can_begin_again(self) -> bool:
        return self._send.can_begin_again

    def _begin_again(self) -> None:
        """A further transaction after the first committed, entered with the next statement."""
        self._send.begin_again()

    def _steps(self, steps: Sequence[Step], *, last: bool = False) -> list[dict[str, Any]]:
        """Run `steps` as one message, each step's row back as JSON; a step matching no row undoes
        the rest (`StepRefused`), in a subtransaction: no error in the server's log."""
        conn = self._send.conn
        texts: list[str] = []
        for index, step in enumerate(steps):
            statement, values = self._bind(step.statement, dict(step.values))
            sql, params = render(conn, statement, values, f"s{index}_")
            # A data-modifying WITH must stay at the top level (a delete's trash).
            own, sql = own_ctes(sql)
            reason = "NULL"
            if step.reason is not None:
                reason, reason_values = render(conn, step.reason, values, f"w{index}_")
                reason = f"({reason})"
                params.update(reason_values)
            params[f"p{index}"] = step.task_id
            texts.append(
                inline(
                    conn,
                    _STEP.format(own=own, statement=sql, id=f"p{index}", reason=reason),
                    params,
                )
            )
        answer = self._send.steps(texts, last=last)
        if isinstance(answer, dict):
            reason = answer["reason"]
            raise StepRefused(int(answer["refused"]), None if reason == "missing" else reason)
        if answer is None:  # refused before the steps ran: the entry's refusal is raised already
            raise RuntimeError("the steps ran in a refused request")
        result: list[dict[str, Any]] = answer
        return result
