"""The documentation site: `mkdocs build --strict` passes (and fails on a broken link, a missing
page or a bad anchor), the README and CLAUDE.md stay short, and every link and path in them
resolves (a page, a file, a heading of the built site)."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

from backend.cli import build_parser
from backend.config import Settings
from tests.conftest import ROOT
from tests.docs.conftest import build_site

README_MAX_LINES = 150
CLAUDE_MAX_LINES = 300
# Markdown links and images: [text](target) and ![alt](target).
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# Paths CLAUDE.md names in backquotes, from the top of the repository.
TOP_LEVEL = ("backend/", "tests/", "specs/", "docs/", "scripts/", "migrations/", "deploy/")
CODE_PATH = re.compile(r"`((?:" + "|".join(TOP_LEVEL) + r")[\w./-]*)`")
# Pointers into the site by heading: docs/contributing/index.md, "How scoping is checked".
SECTION_POINTER = re.compile(r"(docs/[\w/-]+\.md), \"([^\"]+)\"")
PLACEHOLDER = re.compile(r"NNNN|<|\*|\.\.\.")
FENCED = re.compile(r"^ *```.*?^ *```", re.MULTILINE | re.DOTALL)


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids.update(value for name, value in attrs if name == "id" and value)


def html_ids(page: Path) -> set[str]:
    parser = _Ids()
    parser.feed(page.read_text())
    return parser.ids


class _Paragraphs(HTMLParser):
    """The text of every <p>: a Markdown list with no blank line before it (which GitHub
    renders as a list) is one paragraph with "- " lines to Python-Markdown."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = 0
        self.text: list[str] = []
        self.paragraphs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "p":
            self.inside += 1
            self.text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "p" and self.inside:
            self.inside -= 1
            self.paragraphs.append("".join(self.text))

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.text.append(data)


SWALLOWED_LIST = re.compile(r"\n\s*(?:[-*+]|\d+\.) \S")


def swallowed_lists(html: str) -> list[str]:
    parser = _Paragraphs()
    parser.feed(html)
    return [p[:80] for p in parser.paragraphs if SWALLOWED_LIST.search(p)]


def built_page(site: Path, source: Path) -> Path | None:
    """The HTML the site built from a Markdown file of docs/ or specs/, if it is a page."""
    relative = source.resolve().relative_to(ROOT)
    if relative.parts[0] == "specs":
        relative = Path("specs", *relative.parts[1:])
    elif relative.parts[0] == "docs":
        relative = Path(*relative.parts[1:])
    else:
        return None
    stem = relative.with_suffix("")
    html = site / (stem.parent if stem.name == "index" else stem) / "index.html"
    return html if html.exists() else None


def broken_links(text: str, base: Path, site: Path) -> list[str]:
    """Every relative link of a Markdown text that names no file, or a heading its page lacks."""
    problems = []
    for target in LINK.findall(FENCED.sub("", text)):  # code is not a link
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (base / path).resolve() if path else None
        if file is not None and not file.exists():
            problems.append(f"{target}: no such file")
            continue
        if anchor and file is not None:
            html = built_page(site, file)
            if html is None:
                problems.append(f"{target}: an anchor into a file the site does not build")
            elif anchor not in html_ids(html):
                problems.append(f"{target}: no heading #{anchor}")
    return problems


def missing_paths(text: str) -> list[str]:
    """Paths named in backquotes that do not exist, and pointers to headings that do not."""
    problems = [
        path
        for path in CODE_PATH.findall(text)
        if not PLACEHOLDER.search(path) and not (ROOT / path).exists()
    ]
    for page, heading in SECTION_POINTER.findall(text):
        headings = re.findall(r"^#+ (.+)$", (ROOT / page).read_text(), re.MULTILINE)
        if heading not in headings:
            problems.append(f'{page}, "{heading}"')
    return problems


def test_site_builds_with_every_section(built_site: Path) -> None:
    for page in (
        "index.html",
        "get-started/curl/index.html",
        "guides/events/index.html",
        "reference/openapi/index.html",
        "reference/schema/index.html",  # specs/schema.sql, whole
        "specs/api-contract/index.html",  # specs/ shown as it is, not copied
        "design/architecture/index.html",
        "design/performance/index.html",
        "search/search_index.json",
    ):
        assert (built_site / page).is_file(), page
    # What the pages load comes with the site: Swagger UI's files, the contract, the charts.
    for asset in (
        "assets/swagger-ui/swagger-ui-bundle.js",
        "assets/swagger-ui/swagger-ui.css",
        "specs/openapi.json",
        "specs/schema.sql",
        "specs/benchmark.png",
        "design/request-path.svg",
        "design/event-path.svg",
    ):
        assert (built_site / asset).is_file(), asset
    home = (built_site / "index.html").read_text()
    assert "fonts.googleapis.com" not in home and "fonts.gstatic.com" not in home


def test_every_list_renders_as_a_list(built_site: Path) -> None:
    """specs/ are written for GitHub too; a list must be a list on the site as well."""
    problems = {
        page.relative_to(built_site).as_posix(): found
        for page in built_site.rglob("index.html")
        if (found := swallowed_lists(page.read_text()))
    }
    assert not problems, problems
    assert swallowed_lists("<p>Tests:\n- one\n- two</p><ul><li>fine</li></ul>") == [
        "Tests:\n- one\n- two"
    ]


def test_strict_build_fails_on_a_broken_link_a_missing_page_and_a_bad_anchor(
    tmp_path: Path,
) -> None:
    """Deliberate breaks in a copy of the site: each is reported, and the build fails."""
    shutil.copy(ROOT / "mkdocs.yml", tmp_path)
    shutil.copytree(ROOT / "docs", tmp_path / "docs", symlinks=True)
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "docs_hooks.py", tmp_path / "scripts")
    for linked in ("specs", "deploy"):  # what docs/ links to
        (tmp_path / linked).symlink_to(ROOT / linked)
    guides = tmp_path / "docs" / "guides"
    with (guides / "tasks.md").open("a") as page:
        page.write("\nSee [the old page](no-such-page.md).\n")
    with (guides / "lists.md").open("a") as page:
        page.write("\nSee [filters](tasks.md#no-such-heading).\n")
    config = tmp_path / "mkdocs.yml"
    nav_line = "      - Operations and observability: guides/operations.md\n"
    assert nav_line in config.read_text()
    config.write_text(
        config.read_text().replace(nav_line, nav_line + "      - Gone: guides/gone.md\n")
    )

    result = build_site(tmp_path, tmp_path / "site")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "'no-such-page.md'" in output, output
    assert "'guides/gone.md'" in output, output
    assert "#no-such-heading" in output, output
    assert "Aborted with 3 warnings in strict mode" in output, output


def test_readme_fits_on_two_screens_and_links_into_the_site(built_site: Path) -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    for section in ("## Run it", "## Test it", "## Your first task", "## Features"):
        assert section in text
    site_links = [t for t in LINK.findall(text) if t.startswith("docs/")]
    assert len(site_links) >= 20  # the sections of the site, not a manual in one file
    assert broken_links(text, ROOT, built_site) == []


def test_claude_md_is_short_and_names_only_what_exists(built_site: Path) -> None:
    text = (ROOT / "CLAUDE.md").read_text()
    assert len(text.splitlines()) <= CLAUDE_MAX_LINES
    for section in ("## Commands", "## Layout", "## Layer rules", "## Add a field"):
        assert section in text
    assert "## Add a resource" in text and "## Adding an endpoint" in text
    assert broken_links(text, ROOT, built_site) == []
    assert missing_paths(text) == []
    assert len(CODE_PATH.findall(text)) > 50  # the check reads the paths it is meant to


def test_the_link_checks_find_what_is_broken(built_site: Path) -> None:
    text = (
        "[ok](docs/guides/tasks.md#keep-a-copy-in-sync) [site](https://example.com) "
        "[gone](docs/guides/gone.md) [bad](docs/guides/tasks.md#no-such-heading) "
        "[contract](specs/api-contract.md#error-codes) "
        "`backend/main.py` `backend/no_such_module.py` `migrations/NNNN_name.sql` "
        'docs/contributing/index.md, "How scoping is checked" '
        'docs/contributing/index.md, "No such section"'
    )
    assert broken_links(text, ROOT, built_site) == [
        "docs/guides/gone.md: no such file",
        "docs/guides/tasks.md#no-such-heading: no heading #no-such-heading",
    ]
    assert missing_paths(text) == [
        "backend/no_such_module.py",
        'docs/contributing/index.md, "No such section"',
    ]


def settings_missing_from(page: str) -> list[str]:
    """The environment variables of `Settings` that a page does not name (as `NAME`)."""
    return [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in page]


def test_configuration_reference_names_every_setting() -> None:
    page = (ROOT / "docs" / "reference" / "configuration.md").read_text()
    assert settings_missing_from(page) == []
    without = page.replace("`DB_POOL_SIZE`", "`POOL_SIZE`")
    assert settings_missing_from(without) == ["DB_POOL_SIZE"]


def commands_missing_from(page: str) -> list[str]:
    """The `python -m backend` commands that have no row in a page's table."""
    # The usage line lists them: `python -m backend [-h] {serve,migrate,...} ...`.
    choices = re.search(r"\{([\w,-]+)\}", build_parser().format_usage())
    assert choices is not None
    return [
        name
        for name in choices.group(1).split(",")
        if not re.search(rf"^\| `{name}[ `]", page, re.MULTILINE)
    ]


def test_cli_reference_has_a_row_per_command() -> None:
    page = (ROOT / "docs" / "reference" / "cli.md").read_text()
    assert commands_missing_from(page) == []
    assert commands_missing_from(page.replace("| `docs", "| `preview")) == ["docs"]
    assert commands_missing_from(page.replace("| `mcp (", "| `agents (")) == ["mcp"]
