"""Shim: the nine cervical parameters now live in sagitta_ref/measure/cervical.py (a port of
src/measure/cervical.rs). Kept so `import cervical_params` from tools/ keeps working."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sagitta_ref.measure.cervical import *  # noqa: E402,F401,F403
from sagitta_ref.measure.cervical import _norm_deg  # noqa: E402,F401
