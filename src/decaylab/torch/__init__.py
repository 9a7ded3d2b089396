"""PyTorch driver of decaylab: the Scheduler, VelocitySGD, layer-wise LRs, diagnostics.

Needs the ``torch`` extra: ``pip install 'decaylab[torch]'``.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as error:
    raise ImportError(
        "decaylab.torch needs PyTorch, which is not installed; install the extra with "
        "pip install 'decaylab[torch]'"
    ) from error

from decaylab.torch._monitor import Monitor
from decaylab.torch.curvature import (
    HessianOperator,
    NonFiniteError,
    TraceEstimate,
    hessian_trace,
    hvp,
    top_hessian_eigenvalues,
)
from decaylab.torch.flatness import FlatnessSummary, flatness_summary
from decaylab.torch.lanczos import LanczosResult, lanczos
from decaylab.torch.layerwise import layerwise_param_groups
from decaylab.torch.monitors import LRDrop, StepMonitor
from decaylab.torch.noise import (
    GradientNoiseMonitor,
    gradient_noise_scale,
    noise_scale_components,
    sgd_temperature,
)
from decaylab.torch.optim import VelocitySGD
from decaylab.torch.scheduler import (
    COUPLED_WEIGHT_DECAY_WARNING,
    SCHEDULER_BEFORE_OPTIMIZER_WARNING,
    CoupledWeightDecayWarning,
    Scheduler,
)
from decaylab.torch.sharpness import SharpnessProbe

__all__ = [
    "COUPLED_WEIGHT_DECAY_WARNING",
    "CoupledWeightDecayWarning",
    "FlatnessSummary",
    "GradientNoiseMonitor",
    "HessianOperator",
    "LRDrop",
    "LanczosResult",
    "Monitor",
    "NonFiniteError",
    "SCHEDULER_BEFORE_OPTIMIZER_WARNING",
    "Scheduler",
    "SharpnessProbe",
    "StepMonitor",
    "TraceEstimate",
    "VelocitySGD",
    "flatness_summary",
    "gradient_noise_scale",
    "hessian_trace",
    "hvp",
    "lanczos",
    "layerwise_param_groups",
    "noise_scale_components",
    "sgd_temperature",
    "top_hessian_eigenvalues",
]
