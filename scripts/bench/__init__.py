"""API vs raw-baseline benchmark (see specs/benchmark.md): `python -m scripts.bench`."""
