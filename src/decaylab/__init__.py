"""decaylab: learning-rate decay schedules, their couplings and a lab.

The core imports with numpy alone; ``decaylab.torch`` needs the ``torch``
extra and ``decaylab.lab`` the ``lab`` extra.
"""

from decaylab.couplings import (
    adam_stability_threshold,
    adam_update_rms,
    adam_update_rms_limit,
    compensated_weight_decay,
    momentum_correction,
    stability_threshold,
)
from decaylab.matching import (
    compare_schedules,
    epochs_to_steps,
    half_life_area_ratio,
    integrated_lr,
    match_area,
    match_final_lr,
    match_half_life,
    quantize,
)
from decaylab.schedules import (
    AdamCompensated,
    ExponentialDecay,
    MultiStepDecay,
    Schedule,
    ScheduleSpecError,
    StepDecay,
    Warmup,
    parse_schedule,
    schedule_from_dict,
)

__version__ = "0.1.0"

__all__ = [
    "AdamCompensated",
    "ExponentialDecay",
    "MultiStepDecay",
    "Schedule",
    "ScheduleSpecError",
    "StepDecay",
    "Warmup",
    "adam_stability_threshold",
    "adam_update_rms",
    "adam_update_rms_limit",
    "compare_schedules",
    "compensated_weight_decay",
    "epochs_to_steps",
    "half_life_area_ratio",
    "integrated_lr",
    "match_area",
    "match_final_lr",
    "match_half_life",
    "momentum_correction",
    "parse_schedule",
    "quantize",
    "schedule_from_dict",
    "stability_threshold",
]
