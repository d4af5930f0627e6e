"""Reading an uploaded zip: bounded by member count and expanded size before anything is
expanded, and while expanding in case a header understates a member's size."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import pytest

from backend.transfer import sources
from backend.transfer.plan import NotThisSource, ZipTooLarge
from backend.transfer.sources import zips
from tests.transfer.common import zipped


def test_members_in_order_without_directories_or_macosx() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("Takeout/", b"")
        archive.writestr("Takeout/Tasks/Tasks.json", b"{}")
        archive.writestr("__MACOSX/Takeout/._Tasks.json", b"junk")
        archive.writestr("a.csv", b"x")
    assert zips.members(out.getvalue()) == {"Takeout/Tasks/Tasks.json": b"{}", "a.csv": b"x"}
    assert zips.names(out.getvalue()) == ["Takeout/Tasks/Tasks.json", "a.csv"]


def test_wanted_reads_only_the_chosen_members() -> None:
    data = zipped({"a.csv": b"a", "b.txt": b"b" * 100})
    assert zips.members(data, max_expanded=10, wanted=lambda n: n.endswith(".csv")) == {
        "a.csv": b"a"
    }


def test_more_members_than_the_bound_is_refused() -> None:
    data = zipped({f"{n}.csv": b"" for n in range(11)})
    with pytest.raises(ZipTooLarge) as refused:
        zips.members(data, max_members=10)
    assert refused.value.where == "file"
    assert "11 members" in refused.value.message
    with pytest.raises(ZipTooLarge):
        zips.names(data, max_members=10)
    assert len(zips.members(data, max_members=11)) == 11


def test_declared_expansion_over_the_bound_is_refused_before_expanding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = zipped({"a.csv": b"a" * 600, "b.csv": b"b" * 600})

    def never(*_: object, **__: object) -> None:
        raise AssertionError("a member was opened")

    monkeypatch.setattr(zipfile.ZipFile, "open", never)
    with pytest.raises(ZipTooLarge) as refused:
        zips.members(data, max_expanded=1000)
    assert "1200 bytes" in refused.value.message


def _lying_zip(name: str, content: bytes, claimed: int) -> bytes:
    """A stored-deflate zip whose headers claim `claimed` bytes for `content` (a bomb's trick)."""
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = raw.compress(content) + raw.flush()
    crc = zlib.crc32(content)
    encoded = name.encode()
    local = struct.pack(
        "<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(packed), claimed, len(encoded), 0
    )
    sizes = (crc, len(packed), claimed, len(encoded))
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, *sizes, *[0] * 6)
    body = local + encoded + packed
    directory = central + encoded
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(directory), len(body), 0)
    return body + directory + end


def test_a_member_expanding_past_what_its_header_claims_is_stopped() -> None:
    bomb = _lying_zip("Tasks.json", b"\x00" * 5_000_000, claimed=10)
    with pytest.raises((ZipTooLarge, NotThisSource)) as refused:
        zips.members(bomb, max_expanded=1_000_000)
    assert refused.value.where == "Tasks.json"


def test_a_member_claiming_a_huge_size_is_refused_unread() -> None:
    bomb = _lying_zip("Tasks.json", b"{}", claimed=4_000_000_000)
    with pytest.raises(ZipTooLarge) as refused:
        zips.members(bomb)
    assert refused.value.where == "file"


@pytest.mark.parametrize("data", [b"", b"not a zip", b"PK\x03\x04broken"])
def test_not_a_zip(data: bytes) -> None:
    with pytest.raises(NotThisSource) as refused:
        zips.members(data)
    assert refused.value.where == "file"


def test_is_zip() -> None:
    assert zips.is_zip(zipped({"a": b""}))
    assert not zips.is_zip(b"TYPE,CONTENT")


def test_bounds_given_to_the_registry_reach_the_readers() -> None:
    data = zipped({f"Project {n} [{n}].csv": b"TYPE,CONTENT\ntask,x\n" for n in range(5)})
    assert len(sources.read("todoist", data, "backup.zip", "UTC").tasks) == 5
    with pytest.raises(ZipTooLarge):
        sources.read("todoist", data, "backup.zip", "UTC", max_members=4)
    with pytest.raises(ZipTooLarge):
        sources.read("todoist", data, "backup.zip", "UTC", max_expanded=50)
    with zips.bounded(max_members=4), pytest.raises(ZipTooLarge):
        zips.members(data)
    assert len(zips.members(data)) == 5
