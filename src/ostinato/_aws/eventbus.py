"""EventBridge PutEvents: the `EventBus` port."""

from __future__ import annotations

from typing import Any

from .._core.serde import dumps


class EventBridgeBus:
    """Publishes events to the default bus; a `Detail` given as an object is sent as JSON."""

    def __init__(self, region: str, client: Any = None) -> None:
        self.region = region
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("events", region_name=self.region)
        return self._client

    def put_events(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        request = []
        for entry in entries:
            entry = {k: v for k, v in entry.items() if v is not None}
            if not isinstance(entry.get("Detail"), str):
                entry["Detail"] = dumps(entry.get("Detail", {}))
            request.append(entry)
        answer = self.client.put_events(Entries=request)
        return {"FailedEntryCount": int(answer.get("FailedEntryCount", 0)),
                "Entries": answer.get("Entries", [])}
