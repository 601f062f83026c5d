"""Shared test set-up: make the tests folder importable (for the course's reference classes)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
