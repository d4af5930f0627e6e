"""A seeded benchmark database, as every scenario reads it (seed.py makes it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchDb:
    url: str  # libpq URL of the seeded database
    users: int
    tasks: int
    max_seed_id: int  # tasks above this id were created by the benchmark
    seed_seconds: float | None  # None when reused
    list_owners: int = 0  # users `list_owner(1..n)`, each with one seeded list
