"""Outcomes of the sample tooling that callers branch on."""


class SampleSeriesError(Exception):
    """Base of every sample_series error; ``str(err)`` is meant for the user."""


class UnknownCase(SampleSeriesError, LookupError):
    """A case name that is not in the catalogue."""
