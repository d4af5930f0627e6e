"""Reading a zip an import was given, in memory, bounded by its member count and by the bytes
its members would expand to (checked from the central directory before anything is expanded,
and counted as it expands). The readers' branch brings the full module; this is its
`members` as the task-api reader uses it."""

from __future__ import annotations

import io
import zipfile

from backend.transfer.plan import NotThisSource

MAX_MEMBERS = 10_000
MAX_EXPANDED = 256 * 1024 * 1024
_CHUNK = 1024 * 1024


def is_zip(data: bytes) -> bool:
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def members(
    data: bytes, *, max_members: int = MAX_MEMBERS, max_expanded: int = MAX_EXPANDED
) -> dict[str, bytes]:
    """The file members and their bytes; `NotThisSource` past a bound or for a bad zip."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as exc:
        raise NotThisSource("file", f"Not a readable zip: {exc}") from None
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        if len(infos) > max_members:
            raise NotThisSource("file", f"The zip has more than {max_members} members")
        if sum(i.file_size for i in infos) > max_expanded:
            raise NotThisSource("file", f"The zip would expand past {max_expanded} bytes")
        out: dict[str, bytes] = {}
        total = 0
        for info in infos:
            parts: list[bytes] = []
            try:
                with archive.open(info) as member:
                    while chunk := member.read(_CHUNK):
                        total += len(chunk)
                        if total > max_expanded:
                            raise NotThisSource(
                                info.filename, f"The zip would expand past {max_expanded} bytes"
                            )
                        parts.append(chunk)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise NotThisSource(info.filename, f"Unreadable member: {exc}") from None
            out[info.filename] = b"".join(parts)
        return out
