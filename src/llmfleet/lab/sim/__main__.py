"""`python -m llmfleet.lab.sim SERVER-ARGS` (control node) / `python -m llmfleet_sim ...` (image)."""

import sys

from .server import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="sglang serve"))
