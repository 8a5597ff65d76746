"""DynamoDB's item size rule, shared by the DynamoDB adapter, the memory table and the tests.

An item is at most 400 KB, counted as DynamoDB counts it: the UTF-8 bytes of every attribute
name plus its value (a string's UTF-8 bytes, a binary's bytes, a number's significant digits
two to a byte plus one, a boolean or null one byte, a list 3 bytes plus one per element and
the elements). Items are given either as Python values by attribute name (as the stores hold
them; a `None` attribute is not written) or as DynamoDB JSON (`{"S": ...}`, what a scan
returns); `raw` turns the first into the second.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import PayloadTooLargeError

#: DynamoDB's largest item (attribute names and values), in bytes.
ITEM_LIMIT = 400 * 1024
#: Bytes of stored batch body per item: the rest of an item (keys, numbers, the consumed
#: message keys) keeps well inside ITEM_LIMIT.
ITEM_CHUNK = 300_000


def number_text(value: float) -> str:
    """A number as DynamoDB (and pynamodb) writes it."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _number_size(text: str) -> int:
    digits = text.lstrip("+-").lower().split("e")[0].replace(".", "").strip("0")
    return (len(digits) + 1) // 2 + 1


def value_size(value: Any) -> int:
    """The size of one attribute value given as a Python value."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, (int, float)):
        return _number_size(number_text(value))
    if isinstance(value, (list, tuple)):
        return 3 + sum(1 + value_size(v) for v in value)
    if isinstance(value, Mapping):
        return 3 + sum(1 + len(str(k).encode()) + value_size(v) for k, v in value.items())
    raise TypeError(f"not a DynamoDB value: {type(value).__name__}")


def item_size(attrs: Mapping[str, Any]) -> int:
    """The size of an item given as Python values by name (`None` attributes are absent)."""
    return sum(len(name.encode()) + value_size(value)
               for name, value in attrs.items() if value is not None)


def raw_value_size(value: Mapping[str, Any]) -> int:
    """The size of one attribute value in DynamoDB JSON (`{"S": "..."}`, `{"N": "1"}`, ...)."""
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "B":
        return len(raw)
    if kind == "N":
        return _number_size(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + raw_value_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + raw_value_size(v) for k, v in raw.items())
    if kind in ("SS", "NS", "BS"):
        return sum(raw_value_size({kind[0]: v}) for v in raw)
    raise ValueError(f"not a DynamoDB attribute type: {kind}")


def raw_item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """The size of an item in DynamoDB JSON, e.g. one a scan returned."""
    return sum(len(name.encode()) + raw_value_size(value) for name, value in item.items())


def raw_value(value: Any) -> dict[str, Any]:
    """A Python value in DynamoDB JSON, as pynamodb writes it."""
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"B": bytes(value)}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": number_text(value)}
    if isinstance(value, (list, tuple)):
        return {"L": [raw_value(v) for v in value]}
    raise TypeError(f"not a DynamoDB value: {type(value).__name__}")


def raw(attrs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """An item given as Python values by name in DynamoDB JSON (`None` attributes dropped)."""
    return {name: raw_value(value) for name, value in attrs.items() if value is not None}


def check_item(attrs: Mapping[str, Any], what: str, limit: int = ITEM_LIMIT) -> int:
    """Refuse an item DynamoDB would refuse (`PayloadTooLargeError` naming `what`); return
    its size."""
    size = item_size(attrs)
    if size > limit:
        raise PayloadTooLargeError(f"{what} (one DynamoDB item)", size, limit)
    return size
