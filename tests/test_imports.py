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


def test_core_imports_with_extras_missing():
    """Every contract name imports when torch, matplotlib, scikit-learn and scipy are absent."""
    code = """
import importlib.abc, sys

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'torch', 'matplotlib', 'sklearn', 'scipy', 'pandas', 'tqdm'}:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, Missing())
import decaylab as dl
for name in NAMES:
    getattr(dl, name)
s = dl.StepDecay(0.1, 0.5, 30)
assert dl.quantize(dl.match_half_life(s), 30) == s
try:
    import decaylab.torch
except ImportError as error:
    print(error)
"""
    result = subprocess.run(
        [sys.executable, "-c", code.replace("NAMES", repr(CONTRACT_NAMES))],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "pip install 'decaylab[torch]'" in result.stdout
