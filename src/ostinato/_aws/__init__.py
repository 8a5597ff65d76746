"""The AWS adapters behind the ports: DynamoDB store, SQS transport, Scheduler, settings.

The only layer that imports boto3 or pynamodb; imports `_engine.ports` and `_core`.
"""
