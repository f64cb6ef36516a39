"""Tasks that act on hosts: deploy, status, logs, stop, bench, accuracy, collect."""

TASKS: list = []
