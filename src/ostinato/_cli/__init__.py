"""The `ostinato` command line: workflow, callback, schedule, event and replay verbs.

Imports `_client` (through the HTTP API client here), `_local` for `ostinato dev`, and `_core`.
"""
