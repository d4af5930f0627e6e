"""Offsets of the text as the client sent it. The request's `text` is trimmed and NFC-normalized
before it is read (the title stored is of that form), but a client slices its own string to draw
the chips and sends back a token's `start` to reject it: `Offsets` maps one to the other.

NFC composes a base and its combining marks (`e` + U+0301 is `é`) and a Hangul syllable's jamo,
so the text is cut into pieces that normalize on their own (a character that combines with
nothing before it starts one); an offset inside a piece NFC changed (not a token's edge unless
a word starts with a combining mark) maps to the piece's start, or its end for a token's end.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class Offsets:
    """Offsets of `normalized` to and from `sent`: `starts[i]`/`ends[i]` is where normalized
    offset i is in the text sent (as a span's start, as its end)."""

    sent: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """A span of the normalized text as the span of the text sent that it was read from."""
        return self.starts[start], self.ends[end]

    def normalized(self, offsets: set[int]) -> set[int]:
        """The normalized offsets of those `offsets` of the text sent that start a piece
        (another matches no token: it is dropped, as any start that matches none is ignored)."""
        return {
            at
            for at, start in enumerate(self.starts)
            if start in offsets and start == self.ends[at]
        }


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def offsets(sent: str, normalized: str) -> Offsets:
    """How `normalized` (`sent` trimmed and in NFC, as the request's model makes it) sits in
    `sent`; the identity when it is not that (nothing trimmed or composed to account for)."""
    core = sent.strip()
    lead = len(sent) - len(sent.lstrip())
    pieces: list[tuple[int, int, str]] = []  # (start, end) in `core`, and its NFC
    at = 0
    while at < len(core):
        end = at + 1
        while end < len(core) and unicodedata.combining(core[end]):
            end += 1
        piece = core[at:end]
        if pieces:
            start, _, form = pieces[-1]
            joined = _nfc(core[start:end])
            if joined != form + _nfc(piece):  # it composes with the piece before it
                pieces[-1] = (start, end, joined)
                at = end
                continue
        pieces.append((at, end, _nfc(piece)))
        at = end
    if "".join(form for _, _, form in pieces) != normalized:
        identity = tuple(range(len(normalized) + 1))
        return Offsets(normalized, identity, identity)
    starts: list[int] = []
    ends: list[int] = []
    for start, end, form in pieces:
        if form == core[start:end]:  # as sent: one for one
            starts.extend(range(lead + start, lead + end))
            ends.extend(range(lead + start, lead + end))
        else:
            starts.extend([lead + start] * len(form))
            ends.extend([lead + start] + [lead + end] * (len(form) - 1))
    starts.append(lead + len(core))
    ends.append(lead + len(core))
    return Offsets(sent, tuple(starts), tuple(ends))
