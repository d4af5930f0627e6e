"""The naive baseline: what a FastAPI user would write from the tutorials instead of the API.

A FastAPI + SQLModel app in the style of the FastAPI and SQLModel documentation, serving the
five routes the benchmark compares with it (GET one task, list 100, PATCH, toggle completion,
create) on a plain table of its own, `naive_tasks`, as every real alternative has:

- the table is the SQLModel class below, made at start-up by `SQLModel.metadata.create_all`
  (the tutorial's `create_db_and_tables`, idempotent): the columns a tutorial task app has (an
  identity id, user_id, title, description, completed, completed_at, priority, due_date, tags,
  created_at, updated_at) and one index, on user_id; no trigger, no change feed, no version;
- a `Session(engine)` per request from a `Depends` generator; `session.exec(select(...))`
  reads, `session.add` + `session.commit()` + `session.refresh()` writes (the refresh is a
  second SELECT, as the tutorial's pattern has it);
- the engine as the tutorials advise (`pool_pre_ping=True`: one `SELECT 1` on every checkout),
  with the API's pool size (`DB_POOL_SIZE` + `DB_MAX_OVERFLOW`, the API's defaults), over
  psycopg2 like the API;
- a bearer-token dependency that verifies the API's HS256 token with python-jose and takes
  its `sub` (no revocation check, no account row: a tutorial app trusts a valid signature);
- every query scoped by that subject (another user's task is a 404);
- `response_model`s that wrap the task in the API's envelope (`{"data": ...}`), sync routes
  (FastAPI runs them in its thread pool), no rate limit, no change feed, no ETag, no
  round-trip tricks.

The benchmark's seed (`scripts/bench/seed.py`, `copy_to_naive`) fills `naive_tasks` with a copy
of the seeded tasks (same ids, owners and values), so both apps read the same data and the
benchmark's task ids name the same tasks in both; the naive app's writes pay only for its own
table's heap and two indexes (the key and user_id), the API's for its features. Configured by
DATABASE_URL, JWT_SECRET, DB_POOL_SIZE and DB_MAX_OVERFLOW. Served with `uvicorn
scripts.bench.naive:app --loop uvloop --http httptools --no-access-log`, as the benchmark runs
it (`scripts/bench/servers.py`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import OAuth2PasswordBearer
from jose import JWTError, jwt
from pydantic import field_validator
from sqlalchemy import ARRAY, Column, DateTime, Text
from sqlalchemy.engine import make_url
from sqlmodel import Field, Session, SQLModel, create_engine, select

# psycopg2, like the API (the benchmark hands its servers a `postgresql+psycopg://` URL).
DATABASE_URL = make_url(os.environ["DATABASE_URL"]).set(drivername="postgresql+psycopg2")
SECRET_KEY = os.environ["JWT_SECRET"]
ALGORITHM = "HS256"

engine = create_engine(
    DATABASE_URL,
    pool_pre_ping=True,
    pool_size=int(os.environ.get("DB_POOL_SIZE", "20")),
    max_overflow=int(os.environ.get("DB_MAX_OVERFLOW", "0")),
)


def now() -> datetime:
    return datetime.now(UTC)


class TaskBase(SQLModel):
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    priority: str = Field(default="none", schema_extra={"pattern": "^(none|low|medium|high)$"})
    due_date: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    tags: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False))

    @field_validator("due_date")
    @classmethod
    def due_in_utc(cls, value: datetime | None) -> datetime | None:
        # A bare date ("2030-12-01") is midnight UTC; SQLModel stores aware datetimes only.
        return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value


class Task(TaskBase, table=True):
    __tablename__ = "naive_tasks"

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(index=True)
    completed: bool = False
    completed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = Field(default_factory=now, sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=now, sa_type=DateTime(timezone=True))


def create_db_and_tables() -> None:
    SQLModel.metadata.create_all(engine)


class TaskCreate(TaskBase):
    pass


class TaskUpdate(SQLModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = None
    priority: str | None = Field(default=None, schema_extra={"pattern": "^(none|low|medium|high)$"})
    due_date: datetime | None = None
    tags: list[str] | None = None

    due_in_utc = field_validator("due_date")(TaskBase.due_in_utc.__func__)  # type: ignore[attr-defined]


class TaskPublic(TaskBase):
    id: int
    completed: bool
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TaskOut(SQLModel):
    data: TaskPublic


class TaskPage(SQLModel):
    data: list[TaskPublic]


def get_session() -> Iterator[Session]:
    with Session(engine) as session:
        yield session


oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token")


def get_current_user(token: Annotated[str, Depends(oauth2_scheme)]) -> str:
    unauthorized = HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="Could not validate credentials",
        headers={"WWW-Authenticate": "Bearer"},
    )
    try:
        payload = jwt.decode(token, SECRET_KEY, algorithms=[ALGORITHM])
    except JWTError:
        raise unauthorized from None
    user_id = payload.get("sub")
    if not isinstance(user_id, str):
        raise unauthorized
    return user_id


SessionDep = Annotated[Session, Depends(get_session)]
UserDep = Annotated[str, Depends(get_current_user)]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    create_db_and_tables()
    yield


app = FastAPI(title="Naive task API", lifespan=lifespan)


def get_owned_task(session: Session, task_id: int, user_id: str) -> Task:
    task = session.exec(select(Task).where(Task.id == task_id, Task.user_id == user_id)).first()
    if task is None:
        raise HTTPException(status_code=404, detail="Task not found")
    return task


@app.get("/api/tasks", response_model=TaskPage)
def list_tasks(
    session: SessionDep, user_id: UserDep, offset: int = 0, limit: int = 100
) -> dict[str, Any]:
    tasks = session.exec(
        select(Task)
        .where(Task.user_id == user_id)
        .order_by(Task.created_at.desc(), Task.id.desc())  # type: ignore[attr-defined, union-attr]
        .offset(offset)
        .limit(limit)
    ).all()
    return {"data": tasks}


@app.post("/api/tasks", response_model=TaskOut, status_code=201)
def create_task(body: TaskCreate, session: SessionDep, user_id: UserDep) -> dict[str, Any]:
    task = Task.model_validate(body, update={"user_id": user_id})
    session.add(task)
    session.commit()
    session.refresh(task)
    return {"data": task}


@app.get("/api/tasks/{task_id}", response_model=TaskOut)
def read_task(task_id: int, session: SessionDep, user_id: UserDep) -> dict[str, Any]:
    return {"data": get_owned_task(session, task_id, user_id)}


@app.patch("/api/tasks/{task_id}", response_model=TaskOut)
def update_task(
    task_id: int, body: TaskUpdate, session: SessionDep, user_id: UserDep
) -> dict[str, Any]:
    task = get_owned_task(session, task_id, user_id)
    task.sqlmodel_update(body.model_dump(exclude_unset=True))
    task.updated_at = now()
    session.add(task)
    session.commit()
    session.refresh(task)
    return {"data": task}


@app.patch("/api/tasks/{task_id}/complete", response_model=TaskOut)
def toggle_task(task_id: int, session: SessionDep, user_id: UserDep) -> dict[str, Any]:
    task = get_owned_task(session, task_id, user_id)
    task.completed = not task.completed
    task.completed_at = now() if task.completed else None
    task.updated_at = now()
    session.add(task)
    session.commit()
    session.refresh(task)
    return {"data": task}
