"""Framework-free schedules (numpy only)."""

from decaylab.schedules.adam import AdamCompensated
from decaylab.schedules.base import Schedule, schedule_from_dict
from decaylab.schedules.exponential import ExponentialDecay
from decaylab.schedules.spec import ScheduleSpecError, parse_schedule
from decaylab.schedules.step import MultiStepDecay, StepDecay
from decaylab.schedules.warmup import Warmup

__all__ = [
    "AdamCompensated",
    "ExponentialDecay",
    "MultiStepDecay",
    "Schedule",
    "ScheduleSpecError",
    "StepDecay",
    "Warmup",
    "parse_schedule",
    "schedule_from_dict",
]
