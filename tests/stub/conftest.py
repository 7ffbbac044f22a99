"""Keep DeepEval offline before any test module imports it: no telemetry, no update check, no dotenv."""

import os

os.environ["DEEPEVAL_TELEMETRY_OPT_OUT"] = "1"
os.environ.pop("DEEPEVAL_UPDATE_WARNING_OPT_IN", None)
os.environ.setdefault("DEEPEVAL_DISABLE_DOTENV", "1")
