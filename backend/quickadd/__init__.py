"""Quick add: a line a person types (`Buy milk tomorrow 5pm @errands #Home !high`) read into
a task, deterministically and without the database: the service looks up the names the line
types (`names_in`, one round trip) and reads it against them (`read`). The grammar, and where
it could go either way: docs/guides/quick-add.md; its examples: tests/quickadd/. A token is
always whole words, so an email `a@b.com`, `C#`, Mark or monitor stay text.
"""

from backend.quickadd.model import (
    Directory,
    Names,
    NowOutOfRange,
    QuickAddError,
    Reading,
    Token,
)
from backend.quickadd.reader import names_in, read

__all__ = [
    "Directory",
    "Names",
    "NowOutOfRange",
    "QuickAddError",
    "Reading",
    "Token",
    "names_in",
    "read",
]
