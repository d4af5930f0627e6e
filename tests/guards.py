"""One subject's guards: `python -m pytest --guards-for task_comments` runs every generated
guard of one declared task's child (a table of `CHILDREN`) or private resource of named rows
(`NAMED_RESOURCES`, by its table: `saved_filters`), and `--guards-for "POST /api/tasks/quick"`
those of one route (an operation of specs/openapi.json, with its `/api/{user_id}/...` twin if
it has one), and nothing else (docs/contributing, "A change's own guards").

The guards are generated from the declarations and parametrised by what they try: a route
(`POST /api/tasks/{task_id}/comments`), a door (`/tasks/{task_id}/comments`), a tool
(`add_comment`), an error example (`comment_not_found`), a child (`task_comments`). With the
option, a parametrised case runs when its id names the subject, by one of its words (the
table, its noun, its plural: `task_comments`, `comment`, `comments`) standing whole between
characters that are not letters or digits (so `commenter`, a role, is not `comment`); a test
that is not parametrised runs whole (a check of every declaration, as the declared actions'
`tests/sharing/test_declared.py`). A route is named by its `METHOD /path` standing whole: not
followed by a character of a path, and not the beginning of a longer route found there
(`POST /api/tasks` is not `POST /api/tasks/quick`, `/api/calendar` not `/api/calendar-feeds`).
The fuzz test (tests/test_fuzz.py) fuzzes the subject's operations only: those of
specs/openapi.json whose `METHOD /path` names it. Given no test file, the run collects
`GUARD_FILES` only.

A selection that names no case of the subject, or a fuzz filter that names no operation, is a
usage error: a guard narrowed to nothing must never pass for one that ran.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "openapi.json"

# The files that hold the generated guards, each parametrised by route, door, tool, error
# example or child (or checking every declaration at once): what a new child or resource gets
# for free (docs/contributing/index.md).
GUARD_FILES = (
    "tests/test_task_children.py",  # the registry, handover and deletion, the trash, events
    "tests/sharing/test_declared.py",  # every route and tool by id declares its action
    "tests/sharing/test_role_matrix.py",  # each route and tool answers as its role allows
    "tests/sharing/test_named_row_matrix.py",  # a row named in a path, by the caller's standing
    "tests/sharing/test_reference_matrix.py",  # a row named in a body or argument
    "tests/test_references.py",  # same-user keys, a child's copied list_id
    "tests/api/test_isolation_routes.py",  # another user's rows through every route
    "tests/mcp/test_isolation.py",  # and through every tool
    "tests/mcp/test_http_tools.py",  # every tool documented in specs/mcp.md
    "tests/test_rules.py",  # every write route fires only the rules its methods name
    "tests/api/test_named_resources.py",  # a resource of named rows: CRUD, names, limit
    "tests/test_round_trips.py",  # each route's and tool's round trips
    "tests/security/test_protocol_text.py",  # protocol-like text through every writing door
    "tests/api/test_error_examples.py",  # each documented error example, provoked
    "tests/test_openapi.py",  # the committed document, operation ids, examples
    "tests/api/test_api_script_table.py",  # each route's command in scripts/api.sh
    "tests/test_fuzz.py",  # the subject's operations fuzzed
)

OPTION = "--guards-for"
# A test that narrows itself to the subject (the fuzz test: its operations).
MARKER = "narrowed"
FUZZ_OPTION = "--fuzz-operation"

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# A route subject: `METHOD /path`.
ROUTE = re.compile(rf"(?:{'|'.join(m.upper() for m in _METHODS)}) /\S*")
# What, following a route in an id, makes it a longer path (`-` may: `move-owner` is the move
# route's case for an owner; `known` tells `/calendar-feeds` from `/calendar`).
_IN_A_PATH = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_/{}.") - {""}


@dataclass(frozen=True)
class Subject:
    """A declared child, resource or route as the guards' ids name it (a route: `routes`, its
    `METHOD /path` and its twin's; `known`: every route's, to tell a longer one apart)."""

    name: str
    words: tuple[str, ...]
    routes: tuple[str, ...] = ()
    known: frozenset[str] = frozenset()
    # A POST route's generated protocol-text door, named by its collection
    # (tests/security/test_protocol_text.py: `/tasks/{task_id}/comments-text3`).
    door: str | None = None

    @property
    def pattern(self) -> re.Pattern[str]:
        alternatives = "|".join(re.escape(word) for word in sorted(self.words, key=len))
        return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")

    def named_in(self, text: str) -> bool:
        if self.routes:
            door = self.door
            if door is not None and text.startswith(door) and text[len(door) :][:1] == "-":
                return True
            return any(self._route_in(text, route) for route in self.routes)
        return self.pattern.search(text) is not None

    def _route_in(self, text: str, route: str) -> bool:
        for found in re.finditer(re.escape(route), text):
            start, end = found.span()
            if (start and text[start - 1].isalnum()) or text[end : end + 1] in _IN_A_PATH:
                continue
            longer = (r for r in self.known if len(r) > len(route) and r.startswith(route))
            if not any(text.startswith(r, start) for r in longer):
                return True
        return False


def _snake(words: str) -> str:
    return "_".join(words.split())


def subjects() -> dict[str, Subject]:
    """Every subject by its table's name: each task's child, each resource of named rows."""
    import backend.api.routes  # noqa: F401  (builds every router: fills NAMED_RESOURCES)
    from backend.api.named_routes import NAMED_RESOURCES
    from backend.models.task_children import CHILDREN

    found = {}
    for child in CHILDREN:
        words = (child.name, child.snake, *([child.path] if child.path else []))
        found[child.name] = Subject(child.name, words)
    for resource in NAMED_RESOURCES:
        name, rows = str(resource.rows.table.name), resource.rows
        found[name] = Subject(name, (name, _snake(rows.noun), _snake(rows.plural)))
    return found


def route_subject(name: str) -> Subject:
    """The route `METHOD /path` as a subject: with its `/api/{user_id}/...` twin, which
    backend/api/routes/user_tasks.py makes from it, when specs/openapi.json has one."""
    labels = {label for label, _ in operations()}
    if name not in labels:
        raise pytest.UsageError(
            f"{OPTION} {name}: not an operation of specs/{SPEC.name} (a new route: regenerate "
            "it, `python -m backend openapi > specs/openapi.json`)"
        )
    method, _, path = name.partition(" ")
    twin = f"{method} /api/{{user_id}}/{path.removeprefix('/api/')}"
    routes = (name, twin) if twin in labels and path.startswith("/api/") else (name,)
    door = path.removeprefix("/api") if method == "POST" and path.startswith("/api/") else None
    return Subject(name, routes, routes=routes, known=frozenset(labels), door=door)


def subject_of(name: str) -> Subject:
    if ROUTE.fullmatch(name):
        return route_subject(name)
    known = subjects()
    if name not in known:
        raise pytest.UsageError(
            f"{OPTION} {name}: no declared child or resource of that table (a `TaskChild` "
            "beside its table in backend/models/, found by CHILDREN; a `named_rows_router`); "
            "declared: " + ", ".join(sorted(known))
        )
    return known[name]


def operations() -> list[tuple[str, str]]:
    """Every operation of the committed document: (`METHOD /path`, its operationId)."""
    document = json.loads(SPEC.read_text())
    return [
        (f"{method.upper()} {path}", operation.get("operationId", ""))
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in _METHODS
    ]


def fuzzed(config: pytest.Config) -> list[str] | None:
    """The operations (`METHOD /path`) the fuzz test is narrowed to, None for every one: each
    `--fuzz-operation` value selects the operations whose operationId it is, or in whose
    `METHOD /path` it is found as a regular expression; `--guards-for` the subject's."""
    filters: list[str] = config.getoption(FUZZ_OPTION) or []
    name: str | None = config.getoption(OPTION)
    if not filters and name is None:
        return None
    subject = subject_of(name) if name is not None else None
    chosen = []
    for label, operation_id in operations():
        by_filter = not filters or any(
            value == operation_id or re.search(value, label) for value in filters
        )
        if by_filter and (subject is None or subject.named_in(label)):
            chosen.append(label)
    if not chosen:
        raise pytest.UsageError(
            f"{' '.join(f'{FUZZ_OPTION} {value}' for value in filters)}"
            f"{f' {OPTION} {name}' if name else ''}: selects no operation of specs/{SPEC.name}"
        )
    return chosen


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("guards", "one subject's guards (tests/guards.py)")
    group.addoption(
        OPTION,
        metavar="TABLE|'METHOD /path'",
        default=None,
        help="run only the generated guards' cases of one declared task's child or resource "
        "(by its table: task_comments, saved_filters) or of one route ('POST /api/tasks/quick',"
        " with its /api/{user_id} twin); given no test file, the guard files",
    )
    group.addoption(
        FUZZ_OPTION,
        metavar="OPERATION",
        action="append",
        default=[],
        help="fuzz only these operations (tests/test_fuzz.py): an operationId, or a regular "
        "expression searched in 'METHOD /path'; repeatable",
    )


# The fuzz test's operations, chosen once per process when pytest is configured (before the
# test module, which reads them at import, is collected).
_fuzzed: list[str] | None = None


def configure(config: pytest.Config) -> None:
    """Refuse an unknown subject or an empty fuzz selection before anything is collected."""
    global _fuzzed
    name = config.getoption(OPTION)
    if name is not None:
        subject_of(name)
    _fuzzed = fuzzed(config)


def fuzzed_operations() -> list[str] | None:
    """The operations the fuzz test is narrowed to (`fuzzed`), None for every one."""
    return _fuzzed


def _guard_paths() -> set[Path]:
    return {ROOT / file for file in GUARD_FILES}


def ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Given `--guards-for` and no test file, collect only the guard files."""
    if config.getoption(OPTION) is None:
        return None
    if config.args_source is not pytest.Config.ArgsSource.TESTPATHS:
        return None
    paths = _guard_paths()
    if collection_path.is_dir():
        return not any(collection_path in path.parents for path in paths) or None
    is_test = collection_path.name.startswith("test_") and collection_path.suffix == ".py"
    return (is_test and collection_path not in paths) or None


def narrow(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the subject's cases of each parametrised test and every test that is not one (a
    test marked `narrowed` narrows itself, the fuzz test to the subject's operations)."""
    name = config.getoption(OPTION)
    if name is None:
        return
    subject = subject_of(name)
    kept, dropped, own = [], [], 0
    for item in items:
        callspec = getattr(item, "callspec", None)
        if item.get_closest_marker(MARKER) is not None:
            kept.append(item)
            own += 1
        elif callspec is None:
            kept.append(item)
        elif subject.named_in(callspec.id):
            kept.append(item)
            own += 1
        else:
            dropped.append(item)
    if own == 0:
        if hasattr(config, "workerinput"):
            # An xdist worker's usage error is the controller's internal error: the worker
            # runs nothing and the controller says why (`finish`).
            config.hook.pytest_deselected(items=list(items))
            items[:] = []
            return
        raise pytest.UsageError(_nothing(subject))
    config.hook.pytest_deselected(items=dropped)
    items[:] = kept


def _nothing(subject: Subject) -> str:
    return (
        f"{OPTION} {subject.name}: no parametrised case of the collected tests names it "
        f"(by {', '.join(subject.words)}): nothing of its own would run"
    )


def finish(session: pytest.Session) -> None:
    """Under xdist, a run whose workers collected nothing for the subject is the usage error
    a serial run raises (`narrow`), not pytest's "no tests ran"."""
    name = session.config.getoption(OPTION)
    if name is None or hasattr(session.config, "workerinput"):
        return
    if session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"ERROR: {_nothing(subject_of(name))}", red=True)
