"""Shared test settings: hypothesis profiles and side-effect redirection."""

import os
import tempfile

from hypothesis import HealthCheck, settings

# matplotlib writes its config and font cache under the home folder.
os.environ.setdefault("MPLCONFIGDIR", os.path.join(tempfile.gettempdir(), "decaylab-mpl"))

settings.register_profile(
    "default", deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("ci", deadline=None, max_examples=100, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))

# --doctest-modules would import every conftest.py as a module named
# "conftest", and the second import collides with the first. They contain no
# doctests, so only pytest's own conftest loading reads them.
collect_ignore_glob = ["*/conftest.py"]
