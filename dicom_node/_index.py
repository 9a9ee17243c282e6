"""The SQLite connection behind :class:`~dicom_node.storage.Storage`.

One connection in WAL mode, shared by every thread under a lock (the SCP runs one thread per
association, the HTTP server its own pool); statements are short, so the lock is cheap.
``synchronous=FULL`` puts each commit on disk before it returns: the SCP only says "success"
to a scanner after the instance is indexed.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dicom_node._schema import SCHEMA, SCHEMA_VERSION
from dicom_node.errors import StorageError


class Index:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StorageError(
                    f"the index {path} was written by a newer version of this service "
                    f"(schema {version}, this one knows {SCHEMA_VERSION}); upgrade the "
                    "service or point it at another storage folder"
                )
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(
                f"cannot open the storage index {path}: {exc}; check that its folder exists, "
                "is writable by the service and the disk is not full"
            ) from exc

    @contextmanager
    def transaction(self, what: str, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction under the lock; SQLite failures become :class:`StorageError`.

        ``what`` completes the sentence "the storage index failed to ..." in the message.
        """
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StorageError(
                    f"the storage index {self.path} failed to {what}: {exc}; check free disk "
                    f"space and the permissions of {self.path.parent}"
                ) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
