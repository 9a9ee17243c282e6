"""Atomic file writes: a reader never sees a half-written DICOM file, even after a crash.

The bytes go to a temporary file in the destination directory (same file system, so the
rename is atomic), are fsynced, and the temporary file is renamed over the destination.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from pydicom import dcmwrite
from pydicom.dataset import Dataset

TEMP_SUFFIX = ".partial"


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Create or replace ``path`` with what ``write`` puts into the file object it is given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda f: f.write(data))


def write_dataset_atomic(path: Path, dataset: Dataset) -> None:
    """Write ``dataset`` as a DICOM Part-10 file (preamble, DICM, file meta) atomically."""
    write_atomic(path, lambda f: dcmwrite(f, dataset, enforce_file_format=True))
