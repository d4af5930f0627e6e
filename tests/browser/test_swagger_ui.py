"""Swagger UI, used as a person would: register, Authorize (password flow), create and list a
task through "Try it out", in headless Debian Chromium against the real `serve` command.

The page may only reach the API on loopback: /docs must work with no internet access. A
screenshot of the final state is saved to test-artifacts/swagger-ui.png.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from tests.browser.conftest import ARTIFACTS

EMAIL = "swagger-user@example.com"
PASSWORD = "browser-pass-123"
TITLE = "Water the plants (from Swagger UI)"


def operation(page: Any, tag: str, operation_id: str) -> Any:
    """Expand an operation and switch it to "Try it out"."""
    block = page.locator(f"#operations-{tag}-{operation_id}")
    block.locator(".opblock-summary").first.click()
    block.get_by_role("button", name="Try it out").click()
    return block


def execute(block: Any, expected_status: str) -> Any:
    """Press Execute and return the rendered response body as JSON."""
    block.get_by_role("button", name="Execute").click()
    live = block.locator(".live-responses-table .response")
    live.locator(".response-col_status").first.wait_for()
    status = live.locator(".response-col_status").first.inner_text().strip()
    body = live.locator(".response-col_description .microlight").first.inner_text()
    assert status == expected_status, body
    return json.loads(body)


def test_swagger_ui_register_authorize_create_and_list(live_server: str, browser_page: Any) -> None:
    page = browser_page
    foreign: list[str] = []

    def only_loopback(route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if host in {"127.0.0.1", "localhost"} or route.request.url.startswith("data:"):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.set_default_timeout(15_000)

    page.goto(f"{live_server}/docs")
    page.locator(".swagger-ui .info .title").filter(has_text="Task API").wait_for()

    # 1. Register through "Try it out".
    register = operation(page, "auth", "register")
    register.locator("textarea.body-param__text").fill(
        json.dumps({"email": EMAIL, "password": PASSWORD, "name": "Swagger User"})
    )
    account = execute(register, "201")["data"]
    assert account["user"]["email"] == EMAIL

    # 2. Sign in through the Authorize dialog's password flow.
    page.locator(".auth-wrapper button.authorize").click()
    dialog = page.locator(".dialog-ux .modal-ux")
    dialog.locator("#oauth_username").fill(EMAIL)
    dialog.locator("#oauth_password").fill(PASSWORD)
    dialog.locator(".auth-btn-wrapper button.authorize").first.click()
    oauth = dialog.locator(".auth-container").filter(has_text="OAuth2PasswordBearer")
    oauth.locator("h6", has_text="Authorized").wait_for()
    assert oauth.locator(".auth-btn-wrapper button.authorize").inner_text() == "Logout"
    assert not oauth.locator(".errors").count(), oauth.locator(".errors").inner_text()
    oauth.locator("button.btn-done").click()
    assert page.locator(".auth-wrapper button.authorize.locked").count() == 1

    # 3. Create a task with the token Swagger obtained.
    create = operation(page, "tasks", "createTask")
    create.locator("textarea.body-param__text").fill(
        json.dumps({"title": TITLE, "description": "via the browser"})
    )
    created = execute(create, "201")["data"]
    assert created["title"] == TITLE
    assert created["user_id"] == account["user"]["id"]

    # 4. List it.
    listing = operation(page, "tasks", "listTasks")
    listed = execute(listing, "200")
    assert [t["title"] for t in listed["data"]] == [TITLE]
    assert listed["meta"]["count"] == 1
    listing.locator(".live-responses-table").scroll_into_view_if_needed()

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "swagger-ui.png"), full_page=False)
    assert not foreign, f"/docs tried to reach the internet: {foreign}"
    assert not failed, f"requests failed: {failed}"


def test_docs_load_every_asset_from_the_api(live_server: str, browser_page: Any) -> None:
    page = browser_page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    response = page.goto(f"{live_server}/docs")
    assert response is not None and response.status == 200
    page.locator("#operations-tasks-listTasks").wait_for()
    page.wait_for_load_state("networkidle")
    hosts = {
        urlsplit(url).hostname for url in requested if urlsplit(url).scheme in ("http", "https")
    }
    assert hosts == {"127.0.0.1"}, requested


def test_redoc_renders_offline(live_server: str, browser_page: Any) -> None:
    """ReDoc renders with the internet cut off (its bundle links a decorative logo on its CDN,
    which simply does not load)."""
    page = browser_page
    page.route(
        "**/*",
        lambda route: (
            route.continue_()
            if urlsplit(route.request.url).hostname == "127.0.0.1"
            else route.abort()
        ),
    )
    page.goto(f"{live_server}/redoc")
    page.locator("h1", has_text="Task API").first.wait_for(timeout=15_000)
    assert page.get_by_text("Create a task").count() >= 1
