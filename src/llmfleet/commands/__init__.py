"""Command builders: small pure functions that return argv lists (Kamal's commands-as-data).

Nothing here runs anything or quotes anything; ``llmfleet.shell.join`` does the quoting,
once, when a command is sent.
"""
