"""What the readers' tests share: the fixture files (tests/transfer/files/, each app's real
layout) and a zip built in memory."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from backend.transfer.plan import Plan, PlannedTask

FILES = Path(__file__).resolve().parent / "files"
FAR_ZONES = ("Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Kathmandu")


def fixture(*parts: str) -> bytes:
    return FILES.joinpath(*parts).read_bytes()


def zipped(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """The same bytes every time (a fixed date on each member): a parametrized test's id
    shows them, and pytest-xdist's workers must collect the same ids."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in members.items():
            member = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            member.compress_type = compression
            archive.writestr(member, data)
    return out.getvalue()


def by_title(plan: Plan) -> dict[str, PlannedTask]:
    return {task.fields["title"]: task for task in plan.tasks}


def codes(plan: Plan) -> list[tuple[str, str]]:
    return [(warning.item, warning.code) for warning in plan.warnings]


def parents_first(plan: Plan) -> bool:
    seen: set[str] = set()
    for task in plan.tasks:
        if task.parent_key is not None and task.parent_key not in seen:
            return False
        seen.add(task.key)
    return True
