"""The engine: the decider, inbound translation, outbox, activities, caches, and the ports.

Imports only `_core` and its own ports; the adapters behind the ports are chosen by `_runtime`.
"""
