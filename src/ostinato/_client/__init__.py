"""The client: Client, WorkflowHandle, schedules, starts and event triggers.

Imports `_engine.ports` and `_core` only; it is handed its adapters, never builds them.
"""
