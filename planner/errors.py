"""Outcomes of planning that callers branch on. Messages are written for the radiologist."""


class PlanningError(Exception):
    """Base of every planner error; ``str(err)`` is shown to the user as is."""


class InvalidSeries(PlanningError):
    """The series cannot be turned into a trustworthy CT volume."""


class InvalidSeed(PlanningError):
    """The seed point is outside the volume or on something that is not a lesion."""


class LesionNotFound(PlanningError):
    """No lesion could be segmented from the seed."""
