"""The domain: units, people and their roles, targets, admissions, and the queries over them.

Nothing here knows about Telegram; handlers/ translates between chat and these functions.
Query and command functions take an open session and never commit.
"""

from models.base import Base
from models.entities import (
    Admission,
    Assignment,
    Candidate,
    CandidateStage,
    DeadlineNotice,
    Invite,
    Person,
    ProcessedUpdate,
    Role,
    Sex,
    StoredState,
    Target,
    Unit,
    UnitKind,
    Village,
)
from models.reminders import WeeklyCheckIn
from models.sentlog import ReminderSchedule, SentReminder, WeeklyRun

__all__ = [
    "Admission",
    "Assignment",
    "Candidate",
    "CandidateStage",
    "DeadlineNotice",
    "Base",
    "Invite",
    "Person",
    "ReminderSchedule",
    "ProcessedUpdate",
    "Role",
    "SentReminder",
    "Sex",
    "StoredState",
    "Target",
    "Unit",
    "UnitKind",
    "Village",
    "WeeklyCheckIn",
    "WeeklyRun",
]
