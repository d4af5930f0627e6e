"""Business logic, one package per domain (tasks, sharing, history, calendar, accounts, delivery,
chat, transfer) over the statements they share (statements/); each imports only those below it
(tests/test_imports.py `LAYERS`). A service is built with `(send, user_id)` where data is owned,
raises `AppError`s, never reads HTTP objects and never commits: unit_of_work.py's `UnitOfWork`
does."""
