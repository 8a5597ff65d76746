"""Typed payloads end to end: every boundary of DESIGN §2 "Payloads", through the handlers.

The values a workflow, activity or handler receives are decoded by its type hints; what the
client gets back by the workflow's (or handler's) return annotation. History keeps plain JSON.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import uuid
from decimal import Decimal

import pydantic
import pytest

import ostinato
from ostinato import (
    ActivityError,
    ApplicationError,
    DataConversionError,
    QueryRejectedError,
    UpdateRejectedError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    activity,
    activity_context,
    workflow,
)

seen: dict[str, object] = {}


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass(frozen=True)
class Item:
    sku: str
    qty: int = 1


@dataclasses.dataclass
class Order:
    id: uuid.UUID
    items: list[Item]
    placed: dt.datetime
    total: Decimal


class Receipt(pydantic.BaseModel):
    order_id: uuid.UUID
    charged: Decimal
    at: dt.datetime
    lines: tuple[str, ...]


@dataclasses.dataclass
class Progress:
    done: set[str]
    since: dt.date


@dataclasses.dataclass
class Summary:
    receipt: Receipt
    tax: Decimal
    skus: frozenset[str]
    added: list[Item]
    colour: Colour
    rounds: int
    discount: Decimal | None = None


@activity
def charge(order: Order, day: dt.date) -> Receipt:
    ctx = activity_context()
    if ctx.info.attempt == 1:
        ctx.heartbeat(Progress({"auth"}, day))
        ctx.flush()
        raise ApplicationError("card network busy")  # retried: attempt 2 reads the details
    seen["charge"] = (order, day, ctx.heartbeat_details_as(Progress), ctx.heartbeat_details)
    return Receipt(order_id=order.id, charged=order.total, at=order.placed,
                   lines=tuple(i.sku for i in order.items))


def tax(amount: Decimal) -> Decimal:  # a plain function run as a local activity
    seen["tax"] = amount
    return (amount * Decimal("0.2")).quantize(Decimal("0.01"))


@workflow
async def pack(ctx: ostinato.WorkflowContext, items: list[Item]) -> frozenset[str]:
    seen["pack"] = items
    return frozenset(i.sku for i in items)


@workflow
async def checkout(ctx: ostinato.WorkflowContext, order: Order, colour: Colour,
                   rounds: int = 0) -> Summary:
    if rounds == 0:  # the first run hands everything to a fresh one
        ctx.continue_as_new(order, colour, 1)
    seen["checkout"] = (order, colour, rounds)
    added: list[Item] = []
    state: dict[str, Decimal | None] = {"discount": None}

    def add(item: Item) -> None:
        added.append(item)
        seen["signals"] = list(added)  # workflow code reruns on replay: keep the last view

    def items() -> list[Item]:
        return order.items + added

    def discount(pct: Decimal) -> Decimal:
        seen["update"] = pct
        state["discount"] = pct
        return order.total * pct

    ctx.on_signal("add", add)
    ctx.on_query("items", items)
    ctx.on_update("discount", discount)
    receipt = await ctx.execute_activity(charge, order, order.placed.date())
    seen["receipt"] = receipt
    vat = await ctx.execute_local_activity(tax, receipt.charged)
    skus = await ctx.execute_child_workflow(pack, order.items, id=f"pack-{order.id}")
    seen["skus"] = skus
    await ctx.wait_condition(lambda: len(added) >= 1 and state["discount"] is not None)
    return Summary(receipt, vat, skus, added, colour, rounds, state["discount"])


@workflow
async def echo(ctx: ostinato.WorkflowContext, value: object) -> object:
    await ctx.wait_for_signal("go")
    return value


@activity
def takes_item(item: Item) -> str:
    seen["takes_item"] = item
    return item.sku


@workflow
async def sends_wrong_shape(ctx: ostinato.WorkflowContext) -> str:
    return await ctx.execute_activity(takes_item, {"qty": 2})  # no sku: cannot be an Item


app = ostinato.App(workflows=[checkout, pack, echo, sends_wrong_shape],
                   activities=[charge, takes_item])
ORDER = Order(uuid.UUID(int=7), [Item("tea", 2), Item("cup")],
              dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC), Decimal("12.50"))


@pytest.fixture
def env(make_env):
    seen.clear()
    return make_env(app)


def test_typed_values_cross_every_boundary(env):
    handle = env.client.start_workflow(checkout, ORDER, Colour.BLUE, id="typed-1")
    env.drain()
    handle.signal("add", Item("saucer", 4))
    assert handle.update("discount", Decimal("0.1")) == Decimal("1.250")  # handler's -> Decimal
    env.drain()
    summary = handle.result()

    # workflow arguments (through continue-as-new), decoded by the workflow's hints
    order, colour, rounds = seen["checkout"]
    assert order == ORDER and isinstance(order.items[0], Item) and colour is Colour.BLUE
    assert rounds == 1
    # activity arguments decoded by the activity's hints; heartbeat details by the type asked
    got_order, day, progress, raw = seen["charge"]
    assert got_order == ORDER and type(day) is dt.date
    assert progress == Progress({"auth"}, dt.date(2026, 12, 1)) and isinstance(progress.done, set)
    assert raw == {"done": ["auth"], "since": "2026-12-01"}   # plain JSON without a hint
    # activity result decoded by its return annotation, where the workflow awaits it
    assert isinstance(seen["receipt"], Receipt) and seen["receipt"].lines == ("tea", "cup")
    assert seen["tax"] == Decimal("12.50") and isinstance(seen["tax"], Decimal)
    # child arguments and result
    assert seen["pack"] == ORDER.items and isinstance(seen["pack"][0], Item)
    assert seen["skus"] == frozenset({"tea", "cup"})
    # signal and update arguments
    assert seen["signals"] == [Item("saucer", 4)] and seen["update"] == Decimal("0.1")
    # the result, by the workflow's return annotation
    assert isinstance(summary, Summary) and isinstance(summary.receipt, Receipt)
    assert summary.tax == Decimal("2.50") and summary.colour is Colour.BLUE
    assert summary.added == [Item("saucer", 4)] and summary.discount == Decimal("0.1")
    # a handle without the function gets JSON, or the type it asks for
    plain = env.client.get_workflow_handle("typed-1").result()
    assert plain["receipt"]["charged"] == "12.50" and plain["colour"] == "blue"
    assert env.client.get_workflow_handle("typed-1").result(type=Summary) == summary
    assert env.client.get_workflow_handle("typed-1", workflow=checkout).result() == summary


def test_history_keeps_readable_json(env):
    handle = env.client.start_workflow(checkout, ORDER, Colour.RED, id="typed-2")
    env.drain()
    started = handle.history()[0].attributes
    assert started["args"] == [{"id": str(uuid.UUID(int=7)),
                                "items": [{"sku": "tea", "qty": 2}, {"sku": "cup", "qty": 1}],
                                "placed": "2026-12-01T09:30:00+00:00", "total": "12.50"},
                               "red"]  # the first run, which continued as new
    json.dumps([e.attributes for e in handle.history()])  # every event is plain JSON


def test_query_decodes_by_the_handlers_hints(env):
    handle = env.client.start_workflow(checkout, ORDER, Colour.RED, id="typed-3")
    env.drain()
    handle.signal("add", Item("spoon"))
    env.drain()
    latest = env.client.get_workflow_handle("typed-3")  # the run the first continued into
    assert latest.query("items") == [Item("tea", 2), Item("cup"), Item("spoon")]


def test_bad_values_are_typed_errors_that_write_nothing(env):
    with pytest.raises(DataConversionError) as err:
        env.client.start_workflow(echo, object(), id="bad-1")
    assert err.value.boundary == "workflow arguments" and err.value.python_type == "object"
    with pytest.raises(WorkflowNotFoundError):
        env.client.get_workflow_handle("bad-1").describe()

    handle = env.client.start_workflow(checkout, ORDER, Colour.RED, id="typed-4")
    env.drain()
    with pytest.raises(UpdateRejectedError, match="argument 1"):  # refused before it is sent
        handle.update("discount", "ten percent")
    with pytest.raises(QueryRejectedError):
        env.client.get_workflow_handle("typed-4").query("items", "unexpected")
    handle.signal("add", {"qty": 3})  # cannot be an Item: dropped, the run goes on
    handle.signal("add", Item("fork"))
    env.drain()
    assert seen["signals"] == [Item("fork")]
    latest = env.client.get_workflow_handle("typed-4")
    signals = [e for e in latest.history() if e.event_type == "WorkflowExecutionSignaled"]
    assert len(signals) == 2  # both stay in history as received
    assert latest.describe().status == "RUNNING"


def test_activity_argument_that_does_not_fit_fails_without_retries(env):
    handle = env.client.start_workflow(sends_wrong_shape, id="bad-2")
    env.drain()
    with pytest.raises(WorkflowFailedError) as err:
        handle.result()
    cause = err.value.cause
    assert isinstance(cause, ActivityError)
    assert cause.cause.type == "DataConversionError" and "needs field 'sku'" in str(cause.cause)
    assert "takes_item" not in seen  # the activity never ran
    failed = [e for e in handle.history() if e.event_type == "ActivityTaskFailed"]
    assert len(failed) == 1 and failed[0].attributes["attempt"] == 1  # not retryable
