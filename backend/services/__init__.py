"""Business logic. One class per resource, built with `(send, user_id)` where data is owned.

Services run queries and raise `backend.errors.AppError`s; they never read HTTP objects and
never commit (the request's `UnitOfWork`, registry.py, does that once).
"""
