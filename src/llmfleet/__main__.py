"""`python -m llmfleet ...`: the same tasks as `invoke ...` and the `llmfleet` script."""

from .cli import program

program.run()
