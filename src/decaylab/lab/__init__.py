"""The experiment runner behind ``decaylab compare``.

It needs the ``lab`` extra (torch, scikit-learn, tqdm, tomli-w and the data
packages). The usual entry points::

    from decaylab.lab import CompareConfig, compare
    summary_path = compare(CompareConfig(epochs=30, seeds=2), Path("runs/first"))
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> submodule. Importing a submodule loads only what it needs,
# so the option declarations in ``config`` import without torch.
_EXPORTS = {
    "ComparisonPlan": "compare", "PlannedSchedule": "compare", "build_summary": "compare",
    "compare": "compare", "plan_comparison": "compare", "plan_schedules": "compare",
    "prepare_out_dir": "compare", "run_comparison": "compare",
    "MODELS": "config", "OPTIONS": "config", "CompareConfig": "config",
    "ConfigError": "config", "config_differences": "config", "config_from_mapping": "config",
    "config_to_toml": "config", "read_config_file": "config",
    "BUILTIN_DATASETS": "data", "DataError": "data", "Dataset": "data",
    "load_dataset": "data", "read_idx": "data",
    "build_model": "models", "count_parameters": "models",
    "RunResult": "train", "make_optimizer": "train", "steps_per_epoch": "train",
    "train_run": "train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'decaylab.lab' has no attribute {name!r}")
    return getattr(importlib.import_module(f"decaylab.lab.{module}"), name)
