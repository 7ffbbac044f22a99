"""Puts ansible/files on sys.path: the host doctor is a standalone file the play copies to each host."""

from __future__ import annotations

import sys
from pathlib import Path

_DOCTOR_DIR = str(Path(__file__).resolve().parents[2] / "ansible" / "files")
if _DOCTOR_DIR not in sys.path:
    sys.path.insert(0, _DOCTOR_DIR)
