"""The memory table's items, as the DynamoDB adapter (`_aws/store.py`) lays them out.

Each item holds what DynamoDB would: payload attributes as the payload pipeline sealed them
(plain JSON, or an envelope naming its codecs and maybe an object of the payload bucket), a
batch as its stored body. `attrs()` gives an item by the adapter's attribute names, which is
what its size is counted on (`_core/items.py`) and what `raw_items` shows, in the DynamoDB
JSON a scan of the adapter's table returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..._core import history as h
from ..._core.items import ITEM_LIMIT, check_item
from ..._core.listing import list_keys
from ..._core.serde import loads
from ..._engine.payloads import Payloads
from ..._engine.ports import Head, ScheduleRecord

#: A bound on an item's bytes besides its strings: attribute names, numbers, flags.
_FIXED = 512


def fits(what: str, attrs: Any, chars: int) -> None:
    """Refuse an item over DynamoDB's limit (`PayloadTooLargeError`). `chars`: how many
    characters its strings hold; while four bytes each cannot reach the limit (nearly
    always), the item is not counted at all; `attrs` makes its attributes when it must be."""
    if 4 * chars + _FIXED > ITEM_LIMIT:
        check_item(attrs(), what)


@dataclass
class HeadItem:
    """A head as the table holds it (payloads sealed; `parent` as JSON, as the adapter)."""

    workflow_id: str
    run_id: str
    workflow_type: str
    status: str
    start_time: float
    args: str
    batch: int = 0
    close_time: float | None = None
    result: str | None = None
    result_spilled: bool = False
    failure: str | None = None
    custom_status: str | None = None
    task_failure: str | None = None
    continued_from: str | None = None
    deadline: float | None = None
    parent: str | None = None

    def to_head(self, payloads: Payloads, listed: bool = False) -> Head:
        """The `Head` read back; `listed`: as an index returns it (without arguments)."""
        def load(value: str | None) -> Any:
            return None if value is None else loads(payloads.open(value))

        return Head(workflow_id=self.workflow_id, run_id=self.run_id,
                    workflow_type=self.workflow_type, status=self.status,
                    start_time=self.start_time, args=[] if listed else load(self.args),
                    close_time=self.close_time, result=load(self.result),
                    failure=load(self.failure), custom_status=load(self.custom_status),
                    batch=self.batch, task_failure=self.task_failure,
                    continued_from=self.continued_from, deadline=self.deadline,
                    parent=None if self.parent is None else loads(self.parent),
                    result_spilled=self.result_spilled)

    def attrs(self) -> dict[str, Any]:
        return {"pk": f"W#{self.workflow_id}", "sk": "HEAD", "run_id": self.run_id,
                "workflow_type": self.workflow_type, "status": self.status,
                "start_time": self.start_time, "args": self.args,
                "close_time": self.close_time, "result": self.result,
                "failure": self.failure, "custom_status": self.custom_status,
                "batch": self.batch, "task_failure": self.task_failure,
                "continued_from": self.continued_from, "deadline": self.deadline,
                "parent": self.parent, "result_spilled": self.result_spilled or None,
                **list_keys(self.workflow_id, self.status, self.workflow_type)}

    def copy(self) -> HeadItem:
        new = HeadItem.__new__(HeadItem)
        new.__dict__.update(self.__dict__)
        return new

    def check(self) -> None:
        chars = (len(self.args) + len(self.result or "") + len(self.failure or "")
                 + len(self.custom_status or "") + len(self.task_failure or "")
                 + len(self.parent or "") + len(self.continued_from or "")
                 + len(self.workflow_id) + len(self.run_id)
                 + 2 * (len(self.workflow_type) + len(self.status)))
        if 4 * chars + _FIXED > ITEM_LIMIT:
            check_item(self.attrs(), f"the head of workflow {self.workflow_id!r}")


@dataclass(frozen=True)
class BatchItem:
    """A batch as stored: its JSON (`body`, while `Payloads.keeps_inline` says it may stay
    so) or `parts`, what `Payloads.seal_batch` made of it (one item each)."""

    number: int
    first: int
    time: float
    decided: bool
    consumed: tuple[str, ...]
    body: str | None = None
    parts: tuple[bytes, ...] = ()

    def to_batch(self, payloads: Payloads) -> h.Batch:
        body = self.body if self.body is not None else payloads.open_batch(list(self.parts))
        return h.decode_body(self.number, self.first, self.time, self.decided,
                             list(self.consumed), body)

    def attrs(self, run_id: str) -> list[dict[str, Any]]:
        """Its items: the first with the batch's fields, then the rest of the parts."""
        sk = f"B#{self.number:010d}"
        base = {"pk": f"R#{run_id}", "first": self.first, "t": self.time,
                "decided": self.decided}
        consumed = list(self.consumed) or None
        if self.body is not None:
            return [{**base, "sk": sk, "body": self.body, "parts": 1, "consumed": consumed}]
        return [{**base, "sk": sk if n == 0 else f"{sk}#{n:03d}", "bz": part,
                 "parts": len(self.parts), "consumed": consumed if n == 0 else None}
                for n, part in enumerate(self.parts)]

    def check(self, run_id: str) -> None:
        keys = 4 * (len(run_id) + sum(map(len, self.consumed)) + len(self.consumed))
        sizes = [4 * len(self.body)] if self.body is not None else map(len, self.parts)
        for n, size in enumerate(sizes):
            if size + keys + _FIXED > ITEM_LIMIT:
                check_item(self.attrs(run_id)[n], f"batch {self.number} of run {run_id}")


@dataclass
class ScheduleItem:
    """A schedule as stored: the record, its arguments sealed apart (`record.args` unused)."""

    record: ScheduleRecord
    args: str

    def to_record(self, payloads: Payloads) -> ScheduleRecord:
        r = self.record
        return ScheduleRecord(
            name=r.name, workflow_type=r.workflow_type, args=loads(payloads.open(self.args)),
            expression=r.expression, timezone=r.timezone, overlap=r.overlap,
            created=r.created, anchor=r.anchor, last_fire=r.last_fire, last_wid=r.last_wid,
            fired=r.fired, skipped=r.skipped)

    def attrs(self) -> dict[str, Any]:
        r = self.record
        return {"pk": "SCHEDULES", "sk": f"S#{r.name}", "wf_type": r.workflow_type,
                "args": self.args, "expression": r.expression, "tz": r.timezone,
                "overlap": r.overlap, "created": r.created, "anchor": r.anchor,
                "last_fire": r.last_fire, "last_wid": r.last_wid, "fired": r.fired,
                "skipped": r.skipped}

    def check(self) -> None:
        r = self.record
        fits(f"schedule {r.name!r}", self.attrs, sum(map(len, (
            self.args, r.name, r.workflow_type, r.expression, r.timezone, r.overlap,
            r.last_wid or ""))))
