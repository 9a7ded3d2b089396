"""PyTorch driver of decaylab: the Scheduler, VelocitySGD, layer-wise LRs, diagnostics.

Needs the ``torch`` extra: ``pip install 'decaylab[torch]'``.
"""

from __future__ import annotations

import importlib
from typing import Any

try:
    import torch  # noqa: F401
except ImportError as error:
    raise ImportError(
        "decaylab.torch needs PyTorch, which is not installed; install the extra with "
        "pip install 'decaylab[torch]'"
    ) from error

from decaylab.torch.layerwise import layerwise_param_groups
from decaylab.torch.optim import VelocitySGD
from decaylab.torch.scheduler import (
    COUPLED_WEIGHT_DECAY_WARNING,
    SCHEDULER_BEFORE_OPTIMIZER_WARNING,
    CoupledWeightDecayWarning,
    Scheduler,
)

__all__ = [
    "COUPLED_WEIGHT_DECAY_WARNING",
    "CoupledWeightDecayWarning",
    "SCHEDULER_BEFORE_OPTIMIZER_WARNING",
    "Scheduler",
    "VelocitySGD",
    "layerwise_param_groups",
]

# Diagnostics re-exported when their modules are present.
# NOTE: becomes plain imports once monitors, curvature and sharpness are all in the package.
_DIAGNOSTICS = {
    "decaylab.torch.monitors": ("StepMonitor",),
    "decaylab.torch.curvature": ("top_hessian_eigenvalues", "hessian_trace", "hvp"),
    "decaylab.torch.sharpness": ("SharpnessProbe",),
}


def _export_diagnostics(namespace: dict[str, Any]) -> None:
    for module_name, names in _DIAGNOSTICS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        for name in names:
            if hasattr(module, name):
                namespace[name] = getattr(module, name)
                __all__.append(name)


_export_diagnostics(globals())
