"""Outcomes of DICOM networking and storage that callers branch on.

``str(err)`` is meant for the radiologist or the PACS administrator: it says what went wrong
and what to do about it. Messages name UIDs, never patient names or IDs.
"""

from __future__ import annotations


class DicomNodeError(Exception):
    """Base of every dicom_node error."""


class StorageError(DicomNodeError):
    """The disk or the index could not record something (full disk, permissions, corrupt DB).

    The SCP answers such failures with 0xA700 (out of resources) so the sender can retry.
    """


class InvalidInstance(DicomNodeError):
    """A received object cannot be filed: a required UID is missing or malformed.

    The SCP answers 0xC210 (cannot understand); re-sending the same object will not help.
    """


class NotFound(DicomNodeError, LookupError):
    """Base of the "no such thing" errors, so a caller can map all of them to one answer."""


class SeriesNotFound(NotFound):
    """No instance of the requested series has been received."""


class PlanNotFound(NotFound):
    """No plan with the requested id has been saved."""


class DerivedNotFound(NotFound):
    """The plan has no derived object of the requested kind and index."""


class PushFailed(DicomNodeError):
    """Sending objects to a DICOM destination failed for at least one object."""
