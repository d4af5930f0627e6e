"""The built site in headless Chromium, as a reader uses it: the home page, a guide and the
API reference, served on loopback. No console error, navigation and search work, the
architecture diagrams and the benchmark chart render, Swagger UI renders specs/openapi.json,
and not one request leaves 127.0.0.1 (no font, script or style from another host).
Screenshots go to test-artifacts/docs-*.png."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import ARTIFACTS
from tests.serving import serve_in_thread


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site_url(built_site: Path) -> Iterator[str]:
    """The built site served by a static file server on a free loopback port."""
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    serve_in_thread(server)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Watch:
    """What a page did that a reader would not want: errors, failures, other hosts."""

    def __init__(self, page: Any) -> None:
        self.foreign: list[str] = []
        self.failed: list[str] = []
        self.errors: list[str] = []
        page.route("**/*", self._only_loopback)
        page.on("requestfailed", self._failed)
        page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on(
            "response",
            lambda response: (
                self.failed.append(f"{response.status} {response.url}")
                if response.status >= 400
                else None
            ),
        )

    def _failed(self, request: Any) -> None:
        # A load the next navigation cancels (net::ERR_ABORTED) is the test moving on.
        if request.failure != "net::ERR_ABORTED" or urlsplit(request.url).hostname != "127.0.0.1":
            self.failed.append(f"{request.url} ({request.failure})")

    def _only_loopback(self, route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1" or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def assert_clean(self) -> None:
        assert not self.foreign, f"the site tried to reach another host: {self.foreign}"
        assert not self.failed, f"requests failed: {self.failed}"
        assert not self.errors, f"console errors: {self.errors}"


@pytest.fixture
def watched(browser_page: Any) -> tuple[Any, Watch]:
    """The browser page, watched from before its first request."""
    browser_page.set_default_timeout(15_000)
    return browser_page, Watch(browser_page)


def rendered(page: Any, selector: str) -> bool:
    """An image loaded and decoded (an SVG or PNG that failed shows as 0 x 0)."""
    return bool(page.locator(selector).evaluate("img => img.complete && img.naturalWidth > 0"))


def load(page: Any, tag: str, **attributes: str) -> None:
    """Add an element that loads something to the page, and wait until it has (or failed)."""
    page.evaluate(
        """([tag, attributes]) => new Promise(done => {
            const element = Object.assign(document.createElement(tag), attributes);
            element.onload = element.onerror = done;
            document.body.appendChild(element);
        })""",
        [tag, attributes],
    )


def test_home_guide_search_and_diagrams(site_url: str, watched: tuple[Any, Watch]) -> None:
    page, watch = watched

    # The home page, and the navigation tabs to a guide.
    page.goto(f"{site_url}/")
    page.locator("h1", has_text="Task API").wait_for()
    page.locator(".md-tabs__link", has_text="Guides").click()
    page.wait_for_url(f"{site_url}/guides/tasks/")
    page.locator("h1", has_text="Tasks, filters and safe retries").wait_for()
    # The guide's own links: the side navigation to another guide.
    page.locator(".md-nav__link", has_text="Recurrence and reminders").first.click()
    page.wait_for_url(f"{site_url}/guides/recurrence/")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "docs-guide.png"))

    # Search, offline (the built-in index): a word from the contract finds its page.
    page.locator("input.md-search__input").click()
    # The index loads in a worker; Material says "Initializing search" until it is ready.
    page.wait_for_function(
        "() => !/Initializing/i.test("
        "document.querySelector('.md-search-result__meta')?.textContent ?? 'Initializing')"
    )
    page.locator("input.md-search__input").press_sequentially("Idempotency")
    results = page.locator(".md-search-result__item")
    results.first.wait_for()
    assert results.count() >= 1
    results.first.locator("a").first.click()
    page.wait_for_load_state("load")
    assert page.locator("article").inner_text().count("Idempotency-Key") >= 1

    # The architecture diagrams and the benchmark chart render.
    page.goto(f"{site_url}/design/architecture/")
    page.locator("h2", has_text="The path of a request").wait_for()
    page.wait_for_load_state("load")
    assert rendered(page, "img[src$='request-path.svg']")
    assert rendered(page, "img[src$='event-path.svg']")
    page.locator("img[src$='event-path.svg']").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "docs-architecture.png"))
    page.goto(f"{site_url}/design/performance/")
    page.wait_for_load_state("load")
    assert rendered(page, "img[src$='benchmark.png']")

    watch.assert_clean()


def test_api_reference_renders_the_openapi_document(
    site_url: str, watched: tuple[Any, Watch]
) -> None:
    page, watch = watched
    page.goto(f"{site_url}/reference/openapi/")
    page.locator(".swagger-ui .info .title", has_text="Task API").wait_for()
    block = page.locator("#operations-tasks-listTasks")
    block.wait_for()
    block.locator(".opblock-summary").first.click()
    page.get_by_text("status").first.wait_for()  # the parameters of the listing
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ARTIFACTS / "docs-openapi.png"))
    watch.assert_clean()


def test_the_watch_sees_another_host(site_url: str, watched: tuple[Any, Watch]) -> None:
    """Deliberate break: a page that loads a script from another host is caught (aborted and
    reported, with the console error the failed load causes)."""
    page, watch = watched
    page.goto(f"{site_url}/")
    load(page, "script", src="https://cdn.example.com/mermaid.min.js")
    assert watch.foreign == ["https://cdn.example.com/mermaid.min.js"]
    with pytest.raises(AssertionError, match="another host"):
        watch.assert_clean()
    # A diagram that does not render is seen too.
    load(page, "img", id="gone", src="/design/no-such-diagram.svg")
    assert not rendered(page, "#gone")
