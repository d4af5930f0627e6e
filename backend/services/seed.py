"""Demo data for `python -m backend seed`, created through `TaskService` (the same rules as the
API); idempotent by fixed titles, so a second run adds nothing."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.progress import track

from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.db.engine import create_db_engine
from backend.models import TaskCreate, UserRegister
from backend.services.accounts.users import UserService
from backend.services.tasks.service import TaskService
from backend.services.unit_of_work import UnitOfWork

MAX_SEED_TASKS = 1000

DEMO_TASKS: tuple[tuple[str, str | None], ...] = (
    ("Buy milk", "2 litres, oat if they have it"),
    ("Book dentist appointment", None),
    ("Write the quarterly report", "Numbers from the finance sheet"),
    ("Renew passport", "Photos first"),
    ("Call the plumber", None),
    ("Plan the team offsite", "Three venues to compare"),
    ("Read 'Designing Data-Intensive Applications'", None),
    ("Pay the electricity bill", None),
    ("Water the plants", "The fern needs more than the cactus"),
    ("Back up the laptop", None),
)


@dataclass(frozen=True)
class SeedResult:
    user_id: str
    label: str
    created: int
    completed: int
    new_account: bool
    already_there: int = 0

    def summary(self) -> str:
        account = "new" if self.new_account else "existing"
        if self.created == 0:
            return (
                f"nothing to seed: {self.label} already has all {self.already_there} demo "
                f"tasks ({account} account, id {self.user_id})"
            )
        kept = f"; {self.already_there} already there" if self.already_there else ""
        return (
            f"seeded {self.created} tasks ({self.completed} completed) for {self.label} "
            f"({account} account, id {self.user_id}){kept}"
        )


def demo_task(n: int) -> TaskCreate:
    """The n-th demo task (0-based): the same title and state on every run."""
    title, description = DEMO_TASKS[n % len(DEMO_TASKS)]
    round_ = n // len(DEMO_TASKS)
    return TaskCreate.model_validate(
        {
            "title": title if round_ == 0 else f"{title} (#{round_ + 1})",
            "description": description,
            "completed": n % 3 == 0,
        }
    )


def _account(users: UserService, user: str, password: str) -> tuple[str, bool]:
    """The account an email (registered here) or id (provisioned on entry) names, and if new."""
    if "@" in user:
        found = users.find_by_email(user.lower())
        if found is not None:
            return found.id, False
        return users.register(UserRegister(email=user, password=password)).id, True
    return user, users.get(user) is None


def seed_tasks(url: str, settings: Settings, *, user: str, count: int, password: str) -> SeedResult:
    """Create `count` demo tasks for `user` in one transaction (all or nothing)."""
    if not 1 <= count <= MAX_SEED_TASKS:
        raise ValueError(f"--count must be between 1 and {MAX_SEED_TASKS}")
    engine = create_db_engine(url, settings)
    try:
        with UnitOfWork(engine, settings) as work:
            users: UserService = work.service(UserService)
            account, registered = _account(users, user, password)
        # The unit of work a write request gets, its tasks in one transaction (all or none).
        claims = TokenClaims(subject=account, local=False)
        with UnitOfWork(engine, settings, claims=claims, counts_write=True) as work:
            work.hold_commit()
            tasks: TaskService = work.service(TaskService)
            wanted = [demo_task(n) for n in range(count)]
            have = tasks.titles()
            missing = [task for task in wanted if task.title not in have]
            completed = 0
            console = Console(stderr=True)
            for task in track(missing, description="creating tasks", console=console):
                tasks.create(task)
                completed += task.completed
            return SeedResult(
                account,
                user,
                len(missing),
                completed,
                registered,
                already_there=count - len(missing),
            )
    finally:
        engine.dispose()
