"""The sharing tests' set-up (a list of alice's with a task, a role given or taken away): a
filter naming a list matches what its user may read of it."""

from tests.sharing.conftest import grant, shared_list

__all__ = ["grant", "shared_list"]
