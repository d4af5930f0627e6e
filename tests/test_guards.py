"""`--guards-for TABLE|'METHOD /path'` and `--fuzz-operation` (tests/guards.py): the narrowing
selects a subject's own cases and never nothing. A collection in a subprocess is what a
contributor runs (`pytest --collect-only`, nothing executed); the rest reads the declarations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from backend.models.task_children import CHILDREN
from tests import guards

ROOT = Path(__file__).resolve().parent.parent


def _collect(*args: str) -> subprocess.CompletedProcess[str]:
    """`pytest --collect-only -q` of `args`, serial, bounded."""
    command = [sys.executable, "-m", "pytest", "-n", "0", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, "--collect-only", "-q", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _ids(output: str) -> list[str]:
    return [line for line in output.splitlines() if "::" in line]


def test_a_word_of_the_subject_names_a_case_and_a_longer_word_does_not() -> None:
    comments = guards.subject_of("task_comments")
    assert comments.words == ("task_comments", "comment", "comments")
    for case in (
        "POST /api/tasks/{task_id}/comments-viewer",
        "DELETE /api/tasks/{task_id}/comments/{comment_id} path.comment_id-left",
        "add_comment-owner",
        "mcp-add_comment-text3",
        "/tasks/{task_id}/comments-text12",
        "comment_not_found",
        "task_comments",
    ):
        assert comments.named_in(case), case
    for case in (
        "DELETE /api/tasks/{task_id}-commenter",
        "GET /api/tasks/{task_id}/attachments-commenter",
        "task_attachments",
        "list_attachments",
    ):
        assert not comments.named_in(case), case


def test_a_route_names_its_cases_and_its_twins_and_a_longer_route_does_not() -> None:
    quick = guards.subject_of("POST /api/tasks/quick")
    assert quick.routes == ("POST /api/tasks/quick", "POST /api/{user_id}/tasks/quick")
    for case in (
        "POST /api/tasks/quick 0",
        "POST /api/{user_id}/tasks/quick 0",
        "POST /api/tasks/quick+names",
        "POST /api/tasks/quick body.list_id-owner",
    ):
        assert quick.named_in(case), case
    for case in ("POST /api/tasks 0", "POST /api/tasks/parse 0", "quick_add_task-owner"):
        assert not quick.named_in(case), case
    # A POST's generated protocol-text door is named by its collection.
    comments = guards.subject_of("POST /api/tasks/{task_id}/comments")
    assert comments.named_in("/tasks/{task_id}/comments-text3")
    assert not comments.named_in("/tasks/{task_id}/comments/{comment_id}-text3")
    assert not guards.subject_of("POST /api/tasks").named_in("/tasks/{task_id}/comments-text3")
    tasks = guards.subject_of("POST /api/tasks")
    assert tasks.named_in("POST /api/tasks 0") and tasks.named_in("POST /api/tasks-owner")
    assert not tasks.named_in("POST /api/tasks/quick 0")
    assert not tasks.named_in("POST /api/tasks/{task_id}/move-viewer")
    # `-` may follow a route (a case's role), but not begin a longer route found there.
    feeds = guards.subject_of("POST /api/calendar-feeds")
    assert feeds.named_in("POST /api/calendar-feeds-owner")
    shorter = guards.Subject("POST /api/calendar", (), ("POST /api/calendar",), feeds.known)
    assert not shorter.named_in("POST /api/calendar-feeds-owner")
    assert shorter.named_in("POST /api/calendar-owner")
    with pytest.raises(pytest.UsageError, match=r"not an operation of specs/openapi\.json"):
        guards.subject_of("POST /api/tasks/{task_id}/nothing")


def test_a_route_is_narrowed_to_its_cases() -> None:
    file = "tests/test_round_trips.py"
    narrowed = _collect("--guards-for", "POST /api/tasks/quick", file)
    assert narrowed.returncode == 0, narrowed.stdout + narrowed.stderr
    own = [case.split("::")[1] for case in _ids(narrowed.stdout) if "[" in case]
    assert sorted(own) == [
        "test_route_round_trips[POST /api/tasks/quick+names]",
        "test_route_round_trips[POST /api/tasks/quick]",
        "test_route_round_trips[POST /api/{user_id}/tasks/quick]",
    ]
    assert guards.fuzzed(_options(**{guards.OPTION: "POST /api/tasks/quick"})) == [
        "POST /api/tasks/quick",
        "POST /api/{user_id}/tasks/quick",
    ]


def test_every_declared_child_and_resource_is_a_subject() -> None:
    known = guards.subjects()
    assert {child.name for child in CHILDREN} <= set(known)
    assert "saved_filters" in known
    with pytest.raises(pytest.UsageError, match="no declared child or resource"):
        guards.subject_of("task_links")


def test_every_guard_file_exists() -> None:
    missing = [file for file in guards.GUARD_FILES if not (ROOT / file).is_file()]
    assert missing == []


def _options(**given: Any) -> Any:
    """What `fuzzed` reads of a pytest config: its two options."""
    values = {guards.OPTION: None, guards.FUZZ_OPTION: [], **given}
    return SimpleNamespace(getoption=values.__getitem__)


def test_the_fuzz_takes_a_childs_operations_and_an_operation_filter() -> None:
    everything = [label for label, _ in guards.operations()]
    assert guards.fuzzed(_options()) is None
    comments = guards.fuzzed(_options(**{guards.OPTION: "task_comments"}))
    prefix = "/api/tasks/{task_id}/comments"
    assert comments == [label for label in everything if label.split(" ")[1].startswith(prefix)]
    assert len(comments) == 5
    by_id = guards.fuzzed(_options(**{guards.FUZZ_OPTION: ["createTaskComment"]}))
    assert by_id == ["POST /api/tasks/{task_id}/comments"]
    by_pattern = guards.fuzzed(_options(**{guards.FUZZ_OPTION: ["^GET /api/tasks/\\{task_id\\}/"]}))
    assert by_pattern is not None
    assert "GET /api/tasks/{task_id}/comments" in by_pattern
    assert all(label.startswith("GET /api/tasks/{task_id}/") for label in by_pattern)
    both = {guards.OPTION: "task_comments", guards.FUZZ_OPTION: ["^GET "]}
    assert guards.fuzzed(_options(**both)) == [
        "GET /api/tasks/{task_id}/comments",
        "GET /api/tasks/{task_id}/comments/{comment_id}",
    ]


@pytest.mark.parametrize(
    "given",
    [
        {guards.FUZZ_OPTION: ["noSuchOperation"]},
        {guards.OPTION: "saved_filters", guards.FUZZ_OPTION: ["createTaskComment"]},
    ],
    ids=["no such operation", "not the subject's"],
)
def test_a_fuzz_filter_that_selects_nothing_is_an_error(given: dict[str, Any]) -> None:
    with pytest.raises(pytest.UsageError, match="selects no operation"):
        guards.fuzzed(_options(**given))


def test_narrowing_keeps_the_childs_cases_and_every_unparametrised_test() -> None:
    file = "tests/test_references.py"
    whole = _collect(file)
    narrowed = _collect("--guards-for", "task_comments", file)
    assert whole.returncode == 0 and narrowed.returncode == 0, whole.stderr + narrowed.stderr
    everything, kept = _ids(whole.stdout), _ids(narrowed.stdout)
    own = [case for case in kept if "[" in case]
    assert own == [f"{file}::test_a_childs_copied_list_id_is_what_the_specs_say[task_comments]"]
    assert [case for case in kept if "[" not in case] == [
        case for case in everything if "[" not in case
    ]
    assert set(kept) < set(everything)
    assert "deselected" in narrowed.stdout


def test_a_resource_is_narrowed_to_its_cases() -> None:
    file = "tests/api/test_named_resources.py"
    narrowed = _collect("--guards-for", "saved_filters", file)
    assert narrowed.returncode == 0, narrowed.stdout + narrowed.stderr
    kept = _ids(narrowed.stdout)
    assert len(kept) == 5
    assert all(case.endswith("[/api/filters]") for case in kept)


@pytest.mark.parametrize("workers", ["0", "2"], ids=["serial", "two xdist workers"])
def test_a_selection_of_nothing_is_a_usage_error(workers: str) -> None:
    """Narrowed to no case of its subject, a run fails (pytest's usage error), never passes
    having run nothing of it (an unknown subject and a fuzz filter of nothing: above); under
    xdist too, where a worker's error would be the controller's internal error."""
    files = ("tests/api/test_named_resources.py", "tests/test_rules.py")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", workers]
    narrowed = subprocess.run(
        [*command, "--guards-for", "task_comments", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert narrowed.returncode == pytest.ExitCode.USAGE_ERROR, narrowed.stdout + narrowed.stderr
    said = narrowed.stdout + narrowed.stderr
    assert "--guards-for task_comments: no parametrised case of the collected tests" in said


def test_without_a_file_only_the_guard_files_are_collected() -> None:
    config = SimpleNamespace(
        getoption={guards.OPTION: "task_comments"}.__getitem__,
        args_source=pytest.Config.ArgsSource.TESTPATHS,
    )
    ignored = guards.ignore_collect
    for file in guards.GUARD_FILES:
        path = ROOT / file
        assert ignored(path, config) is None, file  # type: ignore[arg-type]
        assert ignored(path.parent, config) is None, file  # type: ignore[arg-type]
    assert ignored(ROOT / "tests" / "test_schema.py", config) is True  # type: ignore[arg-type]
    assert ignored(ROOT / "tests" / "browser", config) is True  # type: ignore[arg-type]
    assert ignored(ROOT / "tests" / "sharing" / "helpers.py", config) is None  # type: ignore[arg-type]
    named = SimpleNamespace(**{**vars(config), "args_source": pytest.Config.ArgsSource.ARGS})
    assert ignored(ROOT / "tests" / "test_schema.py", named) is None  # type: ignore[arg-type]
