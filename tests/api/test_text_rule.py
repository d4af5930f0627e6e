"""The text rule (backend/models/text.py; issue 25, item 6) over REST: look-alike and
invisible text is refused with a 422 naming the field, and writes nothing; canonically equal
text is stored once, in NFC, so tags and the tag filter compare what a reader sees."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Account, count_rows

NFC_E = "\u00e9"  # é, one code point
NFD_E = "e\u0301"  # e + COMBINING ACUTE ACCENT: the same text, two code points

# What the adversarial campaign stored, and its neighbours: (text, the error type).
LOOK_ALIKES: dict[str, tuple[str, str]] = {
    "zero-width space only": ("\u200b", "text_invisible"),
    "invisible format characters only": ("\u2060\ufeff\u200d", "text_invisible"),
    "Hangul filler only": ("\u3164", "text_invisible"),
    "BEL": ("ring\u0007bell", "text_character"),
    "newline inside": ("two\nlines", "text_character"),
    "tab inside": ("a\tb", "text_character"),
    "line separator inside": ("a\u2028b", "text_character"),
    "right-to-left override": ("invoice\u202egpj.exe", "text_character"),
    "first strong isolate": ("a\u2068b", "text_character"),
    "noncharacter U+FFFE": ("a\ufffe", "text_character"),
    "noncharacter U+FDD0": ("\ufdd0x", "text_character"),
    "astral noncharacter U+10FFFF": ("x\U0010ffff", "text_character"),
}


def _create(client: TestClient, alice: Account, **body: Any) -> dict[str, Any]:
    response = client.post("/api/tasks", json={"title": "t", **body}, headers=alice.headers)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()["data"]
    return task


def _refused(response: Any, field: str, error_type: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    # The first detail; PATCH's optional fields add a second, for their `null` branch, and
    # name the other branch in the location (body.tags.function-after[...].0): left out here.
    detail = error["details"][0]
    named = [part for part in detail["field"].split(".") if not part.startswith("function-")]
    assert ".".join(named) == field, detail
    assert detail["type"] == error_type, detail


@pytest.mark.parametrize("label", list(LOOK_ALIKES))
def test_look_alike_title_and_tag_are_refused_on_every_write(
    client: TestClient, alice: Account, db_engine: Engine, label: str
) -> None:
    value, error_type = LOOK_ALIKES[label]
    _refused(
        client.post("/api/tasks", json={"title": value}, headers=alice.headers),
        "body.title",
        error_type,
    )
    _refused(
        client.post(
            "/api/tasks", json={"title": "t", "tags": ["ok", value]}, headers=alice.headers
        ),
        "body.tags.1",
        error_type,
    )
    assert count_rows(db_engine, "tasks") == 0

    task = _create(client, alice, title="keep", tags=["keep"])
    url = f"/api/tasks/{task['id']}"
    for method in ("PUT", "PATCH"):
        for body, field in (({"title": value}, "body.title"), ({"tags": [value]}, "body.tags.0")):
            full = {"title": "t", **body} if method == "PUT" else body
            _refused(
                client.request(method, url, json=full, headers=alice.headers), field, error_type
            )
    bulk = {"operations": [{"op": "add_tag", "id": task["id"], "tag": value}]}
    _refused(
        client.post("/api/tasks/bulk", json=bulk, headers=alice.headers),
        "body.operations.0.add_tag.tag",
        error_type,
    )
    assert client.get(url, headers=alice.headers).json()["data"] == task


@pytest.mark.parametrize(
    ("value", "code_point"),
    [
        ("ring\u0007bell", "U+0007"),
        ("vertical\u000btab", "U+000B"),
        ("next line\u0085", "U+0085"),
        ("invoice\u202egpj.exe", "U+202E"),
        ("a\u2066b\u2069", "U+2066"),
        ("a\ufffe", "U+FFFE"),
        ("a\U0001ffff", "U+1FFFF"),
    ],
)
def test_description_refuses_controls_bidi_overrides_and_noncharacters(
    client: TestClient, alice: Account, db_engine: Engine, value: str, code_point: str
) -> None:
    response = client.post(
        "/api/tasks", json={"title": "t", "description": value}, headers=alice.headers
    )
    _refused(response, "body.description", "text_character")
    assert code_point in response.json()["error"]["details"][0]["message"]
    task = _create(client, alice, description="kept")
    patched = client.patch(
        f"/api/tasks/{task['id']}", json={"description": value}, headers=alice.headers
    )
    _refused(patched, "body.description", "text_character")
    assert count_rows(db_engine, "tasks") == 1


def test_real_text_keeps_line_breaks_and_invisible_characters_and_is_stored_in_nfc(
    client: TestClient, alice: Account
) -> None:
    # Only text made of nothing visible is refused: joiners and marks inside visible text are
    # part of it (emoji sequences, ZWNJ in Persian, RLM in Hebrew); descriptions keep tab and
    # line breaks.
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    description = f"Steps:\n\t1. {NFD_E}crire\r\n\t2. \u05e9\u05dc\u05d5\u05dd\u200f (RLM)"
    task = _create(
        client,
        alice,
        title=f"{family} {persian} {NFD_E}",
        description=description,
        tags=[family, "a\u200fb"],
    )
    assert task["title"] == f"{family} {persian} {NFC_E}"
    assert task["description"] == description.replace(NFD_E, NFC_E)
    assert task["tags"] == [family, "a\u200fb"]


def test_nfc_and_nfd_are_one_tag(client: TestClient, alice: Account) -> None:
    task = _create(
        client, alice, title=f"caf{NFD_E}", tags=[f"caf{NFD_E}", f"caf{NFC_E}", "CAF\u00c9"]
    )
    assert task["title"] == f"caf{NFC_E}"
    assert task["tags"] == [f"caf{NFC_E}"]
    url = f"/api/tasks/{task['id']}"
    patched = client.patch(url, json={"tags": ["x", f"caf{NFD_E}"]}, headers=alice.headers)
    assert patched.json()["data"]["tags"] == ["x", f"caf{NFC_E}"]
    # Bulk: adding the other form adds nothing; removing either form removes the tag.
    operations = [
        {"op": "add_tag", "id": task["id"], "tag": f"caf{NFD_E}"},
        {"op": "remove_tag", "id": task["id"], "tag": f"CAF{NFD_E.upper()}"},
    ]
    response = client.post(
        "/api/tasks/bulk", json={"operations": operations}, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    results = response.json()["data"]["results"]
    assert [r["task"]["tags"] for r in results] == [["x", f"caf{NFC_E}"], ["x"]]


@pytest.mark.parametrize("sent", [NFC_E, NFD_E])
@pytest.mark.parametrize("query", [NFC_E, NFD_E])
def test_tag_filter_and_search_match_either_form(
    client: TestClient, alice: Account, sent: str, query: str
) -> None:
    task = _create(client, alice, title=f"r{sent}sum{sent}", tags=[f"r{sent}sum{sent}"])
    _create(client, alice, title="other", tags=["resume"])
    for params in ({"tag": f"r{query}sum{query}"}, {"q": f"{query}sum"}):
        listed = client.get("/api/tasks", params=params, headers=alice.headers)
        assert listed.status_code == 200, listed.text
        assert [t["id"] for t in listed.json()["data"]] == [task["id"]], params


def test_lengths_are_counted_as_sent_and_in_nfc(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    # 200 code points sent, 100 stored: within the limit both ways.
    assert _create(client, alice, title=NFD_E * 100)["title"] == NFC_E * 100
    # 200 code points sent, 400 once normalised (U+0958 is a composition exclusion).
    response = client.post("/api/tasks", json={"title": "\u0958" * 200}, headers=alice.headers)
    assert response.status_code == 422, response.text
    detail = response.json()["error"]["details"][0]
    assert (detail["field"], detail["type"]) == ("body.title", "string_too_long")
    assert "NFC" in detail["message"]
    # 33 sent is refused even though it is 32 in NFC: the schema's maxLength counts as sent.
    response = client.post(
        "/api/tasks", json={"title": "t", "tags": ["a" * 31 + NFD_E]}, headers=alice.headers
    )
    assert response.status_code == 422, response.text
    assert count_rows(db_engine, "tasks") == 1
    # Surrounding whitespace counts too: 205 sent is refused, not trimmed to fit.
    response = client.post("/api/tasks", json={"title": " " * 5 + "a" * 200}, headers=alice.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["type"] == "string_too_long"
    response = client.post(
        "/api/lists", json={"name": "\u0085" * 100 + "abc"}, headers=alice.headers
    )
    assert response.status_code == 422, response.text
    assert count_rows(db_engine, "tasks") == 1 and count_rows(db_engine, "task_lists") == 0
