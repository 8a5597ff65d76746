"""The data converter on its own: every supported type, nesting, hints and clear errors."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import uuid
from decimal import Decimal
from typing import Any, Literal, NamedTuple, Optional

import pydantic
import pytest

from ostinato import DataConversionError
from ostinato._core import converter


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
    colour: Colour
    tags: set[str]
    note: Optional[str] = None  # noqa: UP045 - the Optional spelling must work too
    window: tuple[dt.date, dt.date] | None = None


class Quote(pydantic.BaseModel):
    price: Decimal
    valid_for: dt.timedelta
    at: dt.time


class Point(NamedTuple):
    x: int
    y: int


def roundtrip(value: Any, hint: Any) -> Any:
    tree = converter.encode(value, "test value")
    text = json.dumps(tree)             # the tree is plain JSON: it stays readable in history
    return converter.decode(json.loads(text), hint, "test value")


def test_dataclass_with_every_nested_type_round_trips():
    order = Order(uuid.uuid4(), [Item("a"), Item("b", 3)],
                  dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC), Decimal("10.05"), Colour.BLUE,
                  {"x", "y"}, window=(dt.date(2026, 1, 1), dt.date(2026, 1, 31)))
    back = roundtrip(order, Order)
    assert back == order
    assert isinstance(back.items[1], Item) and isinstance(back.total, Decimal)
    assert isinstance(back.window, tuple) and isinstance(back.window[0], dt.date)


def test_encoded_tree_is_readable_json_without_type_tags():
    tree = converter.encode(Order(uuid.UUID(int=1), [Item("a")], dt.datetime(2026, 1, 2),
                                  Decimal("1.10"), Colour.RED, {"b", "a"}), "order")
    assert tree == {"id": "00000000-0000-0000-0000-000000000001", "items": [{"sku": "a",
                    "qty": 1}], "placed": "2026-01-02T00:00:00", "total": "1.10",
                    "colour": "red", "tags": ["a", "b"], "note": None, "window": None}


def test_pydantic_models_and_containers_of_them():
    quotes = {"q1": Quote(price=Decimal("2.50"), valid_for=dt.timedelta(hours=2),
                          at=dt.time(8, 15))}
    back = roundtrip(quotes, dict[str, Quote])
    assert back == quotes and isinstance(back["q1"], Quote)


@pytest.mark.parametrize("value,hint", [
    (dt.timedelta(days=1, seconds=3.5), dt.timedelta),
    (b"\x00\xffbytes", bytes),
    ((1, "a", 2.5), tuple[int, str, float]),
    (frozenset({1, 2}), frozenset[int]),
    ({1: "a", 2: "b"}, dict[int, str]),
    ({Colour.RED: 1}, dict[Colour, int]),
    (Point(1, 2), Point),
    (None, Item | None),
    ([Item("a"), None], list[Optional[Item]]),  # noqa: UP045
    ("red", Literal["red", "green"]),
    (2.5, float),
])
def test_scalars_and_containers(value, hint):
    back = roundtrip(value, hint)
    assert back == value and type(back) is type(value)


def test_without_a_hint_a_payload_is_plain_json():
    assert roundtrip(Item("a", 2), None) == {"sku": "a", "qty": 2}
    assert roundtrip(Item("a", 2), Any) == {"sku": "a", "qty": 2}


def test_unknown_keys_are_ignored_and_defaults_fill_in():
    assert converter.decode({"sku": "a", "colour": "new field"}, Item, "x") == Item("a", 1)


def test_union_picks_the_member_that_fits():
    assert converter.decode({"sku": "a"}, int | Item, "x") == Item("a")
    assert converter.decode(5, int | Item, "x") == 5
    assert type(converter.decode(3, float, "x")) is float  # JSON has one number type


def test_unencodable_value_names_boundary_and_type():
    with pytest.raises(DataConversionError) as err:
        converter.encode({"ok": 1, "bad": object()}, "arguments of activity 'x'")
    assert err.value.boundary == "arguments of activity 'x'" and err.value.python_type == "object"
    assert "object" in str(err.value) and err.value.non_retryable
    with pytest.raises(DataConversionError):
        converter.encode(float("nan"), "result")


@pytest.mark.parametrize("tree,hint,needle", [
    ({"qty": 1}, Item, "needs field 'sku'"),
    ({"sku": "a", "qty": "many"}, Item, "Item.qty"),
    ("not a date", dt.date, "date"),
    ("purple", Colour, "not a value of Colour"),
    ("!!", bytes, "bytes"),
    ({"price": "x", "valid_for": 1, "at": "08:00"}, Quote, "price"),
    ([1, 2, 3], tuple[int, int], "expected 2 items"),
    (True, int, "number"),
])
def test_undecodable_tree_is_a_typed_error(tree, hint, needle):
    with pytest.raises(DataConversionError) as err:
        converter.decode(tree, hint, "arguments of activity 'x' (argument 1)")
    assert needle in str(err.value) and "argument 1" in str(err.value)


def test_signature_reads_hints_of_functions_methods_closures_and_callables():
    class Local:
        pass

    def uses_closure(x: Item, *rest: Colour) -> Local:
        return Local()

    class Handler:
        def __call__(self, quote: Quote) -> list[Item]:
            return []

        def method(self, when: dt.date) -> int:
            return 1

    sig = converter.signature(uses_closure)
    assert sig.params == (Item,) and sig.rest is Colour and sig.returns is Local
    assert converter.signature(Handler()).params == (Quote,)
    assert converter.signature(Handler().method).returns is int
    assert converter.signature(lambda x: x).params == (None,)

    async def workflow(ctx: Any, order: Order) -> Quote:
        raise NotImplementedError

    assert converter.signature(workflow, skip=1).params == (Order,)
    assert converter.signature(workflow, skip=1).returns is Quote
