"""The app's one storage (built from its settings on first use, kept on `app.state`), and the
deletion of objects whose rows are gone, run after the commit that removed them."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from backend.storage import ObjectStorage, StorageError, storage_from_settings

logger = logging.getLogger(__name__)


def app_storage(app: Any) -> ObjectStorage:
    """The storage of `app` (a FastAPI app: its `state.settings`)."""
    storage: ObjectStorage | None = getattr(app.state, "storage", None)
    if storage is None:
        storage = app.state.storage = storage_from_settings(app.state.settings)
    return storage


def delete_objects(app: Any, keys: Iterable[str | None]) -> None:
    """Delete the objects of rows already deleted and committed. A failure is logged, not
    raised: the worker's sweeper removes any object left with no row."""
    storage = app_storage(app)
    for key in keys:
        if not key:
            continue
        try:
            storage.delete(key)
        except (StorageError, ValueError):
            logger.warning("attachment object not deleted; the sweeper will", exc_info=True)
