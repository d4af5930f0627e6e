"""The app's one storage (built from its settings on first use, kept on `app.state`), an
upload's bytes stored before any row names them (`store_upload`), and the deletion of objects
no row names: an upload's refused row, or rows gone, after the commit that removed them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from backend.config import Settings
from backend.storage import (
    Measured,
    ObjectStorage,
    StorageError,
    new_key,
    sanitize_filename,
    storage_from_settings,
)
from backend.storage.upload import Readable

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


@dataclass
class StoredUpload:
    """An upload's bytes, stored under a new random key and measured, that no row names yet:
    `recorded` once the row that names them has committed (else they are deleted)."""

    key: str
    filename: str
    measured: Measured
    recorded: bool = False


def store_upload(
    storage: ObjectStorage, source: Readable, filename: str, *, max_bytes: int
) -> StoredUpload:
    """Stream `source` to a new key (blocking: a worker thread). Past `max_bytes`, 413 and
    nothing kept; the storage failing, its 503 and nothing kept (backend/storage/base.py)."""
    name = sanitize_filename(filename)
    key = new_key()
    measured = storage.put(key, source, max_bytes=max_bytes, filename=name)
    return StoredUpload(key, name, measured)


def delete_quietly(storage: ObjectStorage, key: str) -> None:
    """Delete the object under `key`; a failure is logged (the sweeper removes what is left)."""
    try:
        storage.delete(key)
    except (StorageError, ValueError):
        logger.warning("attachment object not deleted; the sweeper will", exc_info=True)


def delete_objects(app: Any, keys: Iterable[str | None]) -> None:
    """Delete the objects of rows deleted and committed; a failure is logged, not raised."""
    storage = app_storage(app)
    for key in keys:
        if key:
            delete_quietly(storage, key)
