"""`python -m backend import` (an operator's door): a file imported for one account, the
same reading, analysis and runner as `POST /api/imports`, run to its end in this process."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.models.imports import ImportPublic
from backend.services.accounts.users import UserService
from backend.services.delivery.notification_settings import NotificationSettingsService
from backend.services.sharing.lists import ListService
from backend.services.tasks.saved_filters import SavedFilterService
from backend.services.transfer.imports import ImportService
from backend.services.unit_of_work import UnitOfWork
from backend.transfer import sources
from backend.transfer.importer import analyse, check_list, standing_of
from backend.transfer.plan import Source
from backend.transfer.runner import ImportRunner


def account_of(engine: Engine, settings: Settings, user: str) -> str:
    """The id of the account `user` (an email or an id) names; `LookupError` if none."""
    with UnitOfWork(engine, settings) as work:
        users: UserService = work.service(UserService)
        found = users.find_by_email(user.lower()) if "@" in user else users.get(user)
    if found is None:
        raise LookupError(f"no account {user!r}")
    return str(found.id)


def import_file(
    engine: Engine,
    settings: Settings,
    user_id: str,
    *,
    source: str,
    data: bytes,
    file_name: str,
    zone: str | None,
    list_id: int | None,
    dry_run: bool,
) -> dict[str, Any]:
    """The dry run's answer, or the import run to its end (its answer); `NotThisSource` or an
    `AppError` (a limit, a list) when refused."""
    claims = TokenClaims(subject=user_id, local=False)
    chosen: Source = sources.detect(data, file_name) if source == "auto" else source  # type: ignore[assignment]
    with UnitOfWork(engine, settings, claims=claims, counts_write=not dry_run) as work:
        zone = zone or work.service(NotificationSettingsService).get().time_zone or "UTC"
        plan = sources.read(chosen, data, file_name, zone)
        imports: ImportService = work.service(ImportService)
        lists: ListService = work.service(ListService)
        if list_id is not None:
            check_list(lists, list_id)
        standing = standing_of(imports, lists, work.service(SavedFilterService), plan)
        analysis = analyse(plan, standing, zone, list_id)
        if dry_run:
            return analysis.answer(user_id).model_dump(mode="json")
        work.hold_commit()
        row = imports.queue(plan.source, data, file_name, zone, list_id)
    ImportRunner(engine, settings).run_once(only=int(row.id))
    with UnitOfWork(engine, settings, claims=claims) as work:
        final = work.service(ImportService).get(int(row.id))
    return ImportPublic.of(final).model_dump(mode="json")
