"""Business logic: one class per resource, built with `(send, user_id)` where data is owned;
services raise `AppError`s, never read HTTP objects and never commit (registry.py's `UnitOfWork`
does)."""
