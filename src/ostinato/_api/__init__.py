"""The HTTP API: Powertools routes, request models and the error map.

Imports `_client` and `_core`; it reaches storage only through the client.
"""
