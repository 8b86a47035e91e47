"""tests/safety: the hostile-file builders in hostile_files.py are importable by the tests here and in tests/fuzz."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
