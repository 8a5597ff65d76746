"""The local stack: `ostinato dev`, emulated Lambda/SQS/Scheduler/EventBridge/API Gateway,
the template reader, the in-memory backend and fault injection. Imports ports, `_aws`, `_core`.
"""
