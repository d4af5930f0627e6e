"""The sharing tests' set-up (a list of alice's with a task, a role given or taken away): a
feed reads what its creator may read."""

from tests.sharing.conftest import grant, shared_list

__all__ = ["grant", "shared_list"]
