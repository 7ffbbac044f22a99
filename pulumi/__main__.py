"""Entry point of `pulumi up` (see README.md): everything is declared by factory.stack.deploy."""

import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

from factory.settings import SettingsError  # noqa: E402
from factory.stack import deploy  # noqa: E402

try:
    deploy(PROJECT_DIR)
except SettingsError as exc:
    # A clear one-line error naming the file and field, instead of a traceback.
    raise SystemExit(f"error: {exc}") from None
