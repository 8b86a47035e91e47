"""tests/fuzz: shares the hostile-file builders of tests/safety."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "safety"))
