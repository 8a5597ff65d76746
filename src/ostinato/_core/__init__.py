"""The pure core: definitions, errors, payloads, history, the wire protocol, keys and replay.

Imports only the standard library and itself: no boto3, no I/O, no clock (a test guards it).
"""
