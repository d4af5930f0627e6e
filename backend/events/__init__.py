"""Event delivery: `python -m backend worker` runs the delivery engine for every sink (its
modules: docs/contributing/index.md; its commands: backend/cli/events.py)."""
