"""The core imports with numpy alone."""

import subprocess
import sys

import decaylab as dl

CONTRACT_NAMES = [
    "StepDecay",
    "MultiStepDecay",
    "ExponentialDecay",
    "Warmup",
    "Schedule",
    "schedule_from_dict",
    "match_half_life",
    "match_final_lr",
    "match_area",
    "quantize",
    "integrated_lr",
    "compare_schedules",
    "stability_threshold",
    "adam_stability_threshold",
    "adam_update_rms",
    "AdamCompensated",
]


def test_contract_names_import():
    for name in CONTRACT_NAMES:
        assert hasattr(dl, name), name
    assert set(CONTRACT_NAMES) <= set(dl.__all__)


def test_core_import_loads_no_heavy_dependency():
    code = (
        "import sys, decaylab; "
        "heavy = [m for m in ('torch', 'matplotlib', 'sklearn', 'scipy', 'pandas') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
