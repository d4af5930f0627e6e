"""The app's one storage (built from its settings on first use, kept on `app.state`), and the
deletion of objects whose rows are gone, run after the commit that removed them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from backend.config import Settings
from backend.storage import ObjectStorage, StorageError, storage_from_settings

logger = logging.getLogger(__name__)


# One storage per settings object (an S3 client costs ~0.5 s to build): the app's, a test's.
_BUILT: dict[int, tuple[Settings, ObjectStorage]] = {}
_LOCK = threading.Lock()


def storage_for(settings: Settings) -> ObjectStorage:
    """The storage `settings` name, built once."""
    with _LOCK:
        built = _BUILT.get(id(settings))
        if built is None or built[0] is not settings:
            built = _BUILT[id(settings)] = (settings, storage_from_settings(settings))
        return built[1]


def app_storage(app: Any) -> ObjectStorage:
    """The storage of `app` (a FastAPI app: its `state.settings`)."""
    return storage_for(app.state.settings)


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
