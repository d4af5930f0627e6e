"""Tasks: `TaskService` (service.py) and its statements, children, listing, schedule, undo."""
