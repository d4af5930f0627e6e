"""Reading a zip an import was given, in memory (nothing is written to disk): bounded by its
member count and by the bytes its members would expand to, both checked from the central
directory before anything is expanded, and the expansion itself counted as it goes, in case a
member's header understates its size."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from backend.transfer.plan import NotThisSource, ZipTooLarge

MAX_MEMBERS = 10_000
MAX_EXPANDED = 256 * 1024 * 1024  # bytes, the members read all together
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Bounds:
    max_members: int = MAX_MEMBERS
    max_expanded: int = MAX_EXPANDED


_BOUNDS: ContextVar[Bounds | None] = ContextVar("zip_bounds", default=None)


def _current() -> Bounds:
    return _BOUNDS.get() or Bounds()


@contextmanager
def bounded(max_members: int | None = None, max_expanded: int | None = None) -> Iterator[Bounds]:
    """Within it, `names` and `members` called without bounds use these (the importer's
    settings reach the readers this way: `sources.read(..., max_members=, max_expanded=)`)."""
    current = _current()
    bounds = Bounds(
        current.max_members if max_members is None else max_members,
        current.max_expanded if max_expanded is None else max_expanded,
    )
    token = _BOUNDS.set(bounds)
    try:
        yield bounds
    finally:
        _BOUNDS.reset(token)


def is_zip(data: bytes) -> bool:
    """Whether `data` starts as a zip does (a local file header, or an empty archive's end)."""
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def names(data: bytes, *, max_members: int | None = None) -> list[str]:
    """The file members' names (directories and `__MACOSX/` left out), from the central
    directory alone; `NotThisSource` if `data` is not a readable zip. A bound not given is the
    one `bounded` set, else the module's default."""
    with _open(data) as archive:
        infos = archive.infolist()
        _check_count(len(infos), _current().max_members if max_members is None else max_members)
        return [info.filename for info in infos if _wanted(info)]


def members(
    data: bytes,
    *,
    max_members: int | None = None,
    max_expanded: int | None = None,
    wanted: Callable[[str], bool] | None = None,
) -> dict[str, bytes]:
    """The file members (those `wanted` keeps, by name; directories and `__MACOSX/` left out)
    and their bytes, in the archive's order. `ZipTooLarge` when the archive has more than
    `max_members` entries or the kept members declare, or turn out to expand to, more than
    `max_expanded` bytes; `NotThisSource` for a zip that cannot be read. A bound not given is
    the one `bounded` set, else the module's default."""
    bounds = _current()
    max_members = bounds.max_members if max_members is None else max_members
    max_expanded = bounds.max_expanded if max_expanded is None else max_expanded
    with _open(data) as archive:
        infos = archive.infolist()
        _check_count(len(infos), max_members)
        kept = [i for i in infos if _wanted(i) and (wanted is None or wanted(i.filename))]
        declared = sum(info.file_size for info in kept)
        if declared > max_expanded:
            raise ZipTooLarge(
                "file",
                f"The zip's members would expand to {declared} bytes, more than the "
                f"{max_expanded} an import may hold",
            )
        out: dict[str, bytes] = {}
        total = 0
        for info in kept:
            parts: list[bytes] = []
            try:
                with archive.open(info) as member:
                    while chunk := member.read(min(_CHUNK, max_expanded - total + 1)):
                        total += len(chunk)
                        if total > max_expanded:
                            raise ZipTooLarge(
                                info.filename,
                                f"The zip's members expand to more than the {max_expanded} "
                                "bytes an import may hold (more than their headers declare)",
                            )
                        parts.append(chunk)
            except NotThisSource:
                raise
            except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError):
                raise NotThisSource(
                    info.filename,
                    "The zip member cannot be read (damaged, encrypted or compressed in a way "
                    "we do not read)",
                ) from None
            except (OSError, EOFError, ValueError):
                raise NotThisSource(info.filename, "The zip member is damaged") from None
            out[info.filename] = b"".join(parts)
        return out


def _open(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise NotThisSource("file", "The file is not a readable zip archive") from None


def _check_count(count: int, max_members: int) -> None:
    if count > max_members:
        raise ZipTooLarge(
            "file", f"The zip has {count} members, more than the {max_members} an import may hold"
        )


def _wanted(info: zipfile.ZipInfo) -> bool:
    name = info.filename
    return not info.is_dir() and not name.startswith("__MACOSX/") and "/__MACOSX/" not in name
