"""`invoke` entry point: the whole namespace lives in llmfleet.cli (also the `llmfleet` script)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from llmfleet.cli import namespace  # noqa: E402

ns = namespace
