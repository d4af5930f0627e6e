"""Built-in accounts' passwords are hashed with argon2id at no less than OWASP's minimum
cost (19 MiB, two passes); the tests' low-cost hasher (tests/conftest.py) never reaches
production code paths outside the test process."""

from __future__ import annotations

import re

from tests.conftest import PRODUCTION_PASSWORD_HASH


def test_production_hashes_are_argon2id_at_owasp_cost_or_more() -> None:
    encoded = PRODUCTION_PASSWORD_HASH.hash("correct horse battery staple")
    found = re.fullmatch(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[^$]+\$[^$]+", encoded)
    assert found is not None, encoded
    memory_kib, passes, _ = map(int, found.groups())
    assert memory_kib >= 19 * 1024 and passes >= 2, encoded
    assert PRODUCTION_PASSWORD_HASH.verify("correct horse battery staple", encoded)
    assert not PRODUCTION_PASSWORD_HASH.verify("correct horse battery stapler", encoded)
