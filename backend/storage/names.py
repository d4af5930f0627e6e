"""An attachment's file name, and the headers it is served with (specs/storage.md, "Served
safely"). The name a client sends is for display and `Content-Disposition` only, never a path
or an object key; `sanitize_filename` still cleans it, so it cannot smuggle a directory, a
header break or a right-to-left override. `download_headers` is the one place that decides
how bytes are served, by the API and in a presigned URL: never inline, never an active type.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

# Bytes, not characters: what file systems cap (ext4, NTFS, APFS: 255) and what keeps a
# header short.
MAX_FILENAME_BYTES = 255
FALLBACK_NAME = "file"
# Unicode categories removed from a name: controls (NUL, CR, LF, ESC ...), format characters
# (bidi overrides such as U+202E, zero-width joiners), line and paragraph separators,
# surrogates and unassigned code points.
_REMOVED_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"}
# Separators of every platform a name may come from (a browser on Windows may send the whole
# `C:\fakepath\name`): only the last component is the name.
_SEPARATORS = re.compile(r"[/\\]")
_SPACES = re.compile(r"\s+")
# Device names Windows refuses as a file name, whatever the extension.
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)

# Types served as themselves. Anything a browser would run as a document (HTML, XHTML, SVG,
# XML, JavaScript, PDF's scripting aside) goes out as `application/octet-stream`.
ACTIVE_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "application/xml",
        "text/xml",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "text/xsl",
        "application/xslt+xml",
        "application/x-shockwave-flash",
        "multipart/x-mixed-replace",
    }
)
OCTET_STREAM = "application/octet-stream"
# A response a browser does render stays inert: no script, no plugin, no form, no fetch, no
# same-origin access (`sandbox` gives it an opaque origin).
SANDBOX_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
CACHE_CONTROL = "private, no-store"
_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")


def sanitize_filename(name: str, *, max_bytes: int = MAX_FILENAME_BYTES) -> str:
    """The name to store and show: the last path component, NFKC-normalised, without
    control, format or separator characters or edge dots and spaces, at most `max_bytes` of
    UTF-8 (the extension kept); "file" when nothing is left."""
    text = unicodedata.normalize("NFKC", name)
    text = _SEPARATORS.split(text)[-1]
    text = "".join(
        " " if char.isspace() else char
        for char in text
        if unicodedata.category(char) not in _REMOVED_CATEGORIES or char in "\t\n\r"
    )
    text = _SPACES.sub(" ", text).strip(" .")
    if _WINDOWS_RESERVED.match(text):
        text = f"_{text}"
    text = _truncate(text, max_bytes).strip(" .")
    return text or FALLBACK_NAME


def _truncate(text: str, max_bytes: int) -> str:
    if len(text.encode()) <= max_bytes:
        return text
    stem, dot, extension = text.rpartition(".")
    # A short extension is kept (`report.pdf` stays a PDF); a long tail is just more name.
    if not dot or not stem or len(extension.encode()) > 16:
        stem, extension = text, ""
    suffix = f".{extension}" if extension else ""
    budget = max_bytes - len(suffix.encode())
    # Cut on a character boundary: decode what fits, dropping a split multi-byte character.
    return stem.encode()[:budget].decode(errors="ignore").rstrip(" .") + suffix


def served_type(content_type: str) -> str:
    """The Content-Type a download carries: the detected type, or `application/octet-stream`
    for an active document type or anything that is not a plain `type/subtype`."""
    base = content_type.split(";", 1)[0].strip().lower()
    if base in ACTIVE_TYPES or not _TYPE.match(base):
        return OCTET_STREAM
    if base == "text/plain":
        return "text/plain; charset=utf-8"
    return base


def content_disposition(filename: str) -> str:
    """RFC 6266 `attachment` with an ASCII `filename` for old clients and the exact name as
    RFC 5987 `filename*` (UTF-8, percent-encoded): never a quote, backslash, CR or LF raw."""
    name = sanitize_filename(filename)
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = re.sub(r'[^\x20-\x7e]|["\\%]', "_", ascii_name)
    stem, dot, extension = ascii_name.rpartition(".")
    ascii_name = ascii_name.strip(" .")
    if not ascii_name or (dot and extension and not stem.strip(" ._")):
        # Nothing of the stem is ASCII (日本語.txt): a generic stem, the extension kept.
        ascii_name = f"{FALLBACK_NAME}.{extension}" if dot else FALLBACK_NAME
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


@dataclass(frozen=True)
class DownloadHeaders:
    """The headers of a download; a presigned URL signs the first three (S3 can sign no
    other), so it relies on `attachment` and the storage's own origin."""

    content_type: str
    content_disposition: str
    cache_control: str = CACHE_CONTROL

    def as_dict(self) -> dict[str, str]:
        return {
            "Content-Type": self.content_type,
            "Content-Disposition": self.content_disposition,
            "Cache-Control": self.cache_control,
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": SANDBOX_CSP,
            "Cross-Origin-Resource-Policy": "same-origin",
            "Referrer-Policy": "no-referrer",
        }


def download_headers(filename: str, content_type: str) -> DownloadHeaders:
    """How an attachment is served: always as an attachment, with its safe served type."""
    return DownloadHeaders(served_type(content_type), content_disposition(filename))
