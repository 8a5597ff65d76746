"""The data converter: Python values <-> JSON trees, decoded by the receiver's type hints.

Every payload (arguments, results, signal/query/update arguments, heartbeat details, custom
status) is encoded here into a plain JSON tree before it is recorded or sent, and decoded
here by the type hints of the function that receives it. Trees stay readable JSON in
history: a dataclass is an object of its fields, a `datetime` an ISO 8601 string, and so on;
no type tags are written, so what a payload means is decided by the code that reads it.

| Python                          | JSON                                   |
|---------------------------------|----------------------------------------|
| dataclass, pydantic v2 model    | object (`model_dump(mode="json")`)     |
| datetime, date, time            | ISO 8601 string                        |
| timedelta                       | number of seconds                      |
| UUID, Decimal                   | string (exact)                         |
| Enum                            | its value                              |
| bytes, bytearray                | base64 string                          |
| tuple, list, set, frozenset     | array (sets sorted when they can be)   |

Without a hint (or with `Any`), a payload decodes as plain JSON. pydantic is never imported
here: a model is recognised by `model_dump`/`model_validate`, so the core stays stdlib-only.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import enum
import functools
import inspect
import math
import re
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import DataConversionError

_SCALARS = (str, int, float, bool, type(None))
_ISO_DURATION = re.compile(
    r"^(-)?P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?"
    r"(?:(\d+(?:\.\d+)?)S)?)?$")


# -- encoding -----------------------------------------------------------------------------
def encode(value: Any, what: str) -> Any:
    """`value` as a JSON tree; raises `DataConversionError` naming `what` and the type."""
    try:
        return _encode(value)
    except _Unsupported as exc:
        raise DataConversionError(
            f"{what} cannot be encoded: values of type {exc.type_name} are not supported "
            "(use JSON values, dataclasses, pydantic models, datetime, UUID, Decimal, Enum, "
            "bytes, tuples or sets)", boundary=what, python_type=exc.type_name) from None


class _Unsupported(Exception):
    def __init__(self, value: Any) -> None:
        super().__init__()
        self.type_name = _name(type(value))


def _encode(value: Any) -> Any:
    if isinstance(value, str | bool | type(None)):
        return value
    if isinstance(value, int | float) and not isinstance(value, enum.Enum):
        if isinstance(value, float) and not math.isfinite(value):
            raise _Unsupported(value)  # NaN and infinities are not JSON
        return value
    if isinstance(value, list | tuple):
        return [_encode(item) for item in value]
    if isinstance(value, dict):
        return {_key(k): _encode(v) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return _encode(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if dump is not None and hasattr(type(value), "model_validate"):
        return dump(mode="json")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset):
        items = [_encode(item) for item in value]
        try:
            return sorted(items)  # a set has no order: give it a stable one where it can
        except TypeError:
            return items
    raise _Unsupported(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    encoded = _encode(key)
    if isinstance(encoded, bool) or not isinstance(encoded, str | int | float):
        raise _Unsupported(key)
    return encoded if isinstance(encoded, str) else str(encoded)


# -- decoding -----------------------------------------------------------------------------
def decode(tree: Any, hint: Any, what: str) -> Any:
    """`tree` decoded as `hint` (a type or typing form; None/Any keeps plain JSON)."""
    try:
        return _decode(tree, hint)
    except _Mismatch as exc:
        raise DataConversionError(
            f"{what} cannot be decoded as {_name(hint)}: {exc}", boundary=what,
            python_type=_name(hint)) from None


class _Mismatch(Exception):
    pass


def _decode(tree: Any, hint: Any) -> Any:
    if hint is None or hint is Any or hint is inspect.Parameter.empty or hint is object:
        return tree
    if hint is type(None):
        if tree is not None:
            raise _Mismatch(f"expected null, got {_what(tree)}")
        return None
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _decode(tree, typing.get_args(hint)[0])
    if origin is typing.Union or origin is types.UnionType:
        return _decode_union(tree, typing.get_args(hint))
    if origin is typing.Literal:
        if tree not in typing.get_args(hint):
            raise _Mismatch(f"{tree!r} is not one of {typing.get_args(hint)!r}")
        return tree
    if isinstance(hint, typing.NewType):
        return _decode(tree, hint.__supertype__)
    if isinstance(hint, typing.TypeVar):
        return _decode(tree, hint.__bound__)
    if origin is not None:
        return _decode_generic(tree, origin, typing.get_args(hint))
    if not isinstance(hint, type):
        return tree  # a form we do not know: keep the JSON as it is
    return _decode_class(tree, hint)


def _decode_union(tree: Any, options: tuple[Any, ...]) -> Any:
    if tree is None and type(None) in options:
        return None
    problems = []
    for option in options:
        if option is type(None):
            continue
        try:
            return _decode(tree, option)
        except (_Mismatch, DataConversionError) as exc:
            problems.append(f"{_name(option)}: {exc}")
    raise _Mismatch("; ".join(problems) or f"got {_what(tree)}")


def _decode_generic(tree: Any, origin: Any, args: tuple[Any, ...]) -> Any:
    if origin in (list, set, frozenset) or _is_abc(origin, "Sequence", "Iterable",
                                                    "Collection", "MutableSequence",
                                                    "Set", "MutableSet"):
        items = _array(tree)
        item_hint = args[0] if args else Any
        decoded = [_decode(item, item_hint) for item in items]
        if origin in (set, frozenset) or _is_abc(origin, "Set", "MutableSet"):
            return frozenset(decoded) if origin is frozenset else set(decoded)
        return decoded
    if origin is tuple:
        items = _array(tree)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(item, args[0]) for item in items)
        if args and len(args) != len(items):
            raise _Mismatch(f"expected {len(args)} items, got {len(items)}")
        return tuple(_decode(item, hint) for item, hint in zip(items, args or [Any] * len(items),
                                                                 strict=True))
    if origin is dict or _is_abc(origin, "Mapping", "MutableMapping"):
        if not isinstance(tree, dict):
            raise _Mismatch(f"expected an object, got {_what(tree)}")
        key_hint, value_hint = (*args, Any, Any)[:2]
        return {_decode_key(k, key_hint): _decode(v, value_hint) for k, v in tree.items()}
    if origin is type:
        return tree
    if isinstance(origin, type):
        return _decode_class(tree, origin)
    return tree


def _is_abc(origin: Any, *names: str) -> bool:
    return getattr(origin, "__module__", "") == "collections.abc" and origin.__name__ in names


def _decode_key(key: str, hint: Any) -> Any:
    if hint in (int, float) and isinstance(key, str):
        try:
            return hint(key)
        except ValueError:
            raise _Mismatch(f"object key {key!r} is not a {hint.__name__}") from None
    return _decode(key, hint)


def _array(tree: Any) -> list[Any]:
    if not isinstance(tree, list):
        raise _Mismatch(f"expected an array, got {_what(tree)}")
    return tree


def _decode_class(tree: Any, cls: type) -> Any:
    if cls is bool:
        if not isinstance(tree, bool):
            raise _Mismatch(f"expected a boolean, got {_what(tree)}")
        return tree
    if issubclass(cls, enum.Enum):
        try:
            return cls(tree)
        except ValueError:
            raise _Mismatch(f"{tree!r} is not a value of {cls.__name__}") from None
    if cls in (int, float):
        if isinstance(tree, bool) or not isinstance(tree, int | float):
            raise _Mismatch(f"expected a number, got {_what(tree)}")
        if cls is int and isinstance(tree, float):
            if not tree.is_integer():
                raise _Mismatch(f"expected an integer, got {tree!r}")
            return int(tree)
        return cls(tree)
    if cls is str:
        if not isinstance(tree, str):
            raise _Mismatch(f"expected a string, got {_what(tree)}")
        return tree
    if cls in (list, tuple, set, frozenset, dict):
        return _decode_generic(tree, cls, ())
    if dataclasses.is_dataclass(cls):
        return _decode_dataclass(tree, cls)
    validate = getattr(cls, "model_validate", None)
    if validate is not None and hasattr(cls, "model_dump"):
        try:
            return validate(tree)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise _Mismatch(" ".join(str(exc).split())) from None
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):  # a NamedTuple
        hints = _class_hints(cls)
        if isinstance(tree, dict):
            return cls(**{f: _decode(tree[f], hints.get(f)) for f in cls._fields if f in tree})
        return cls(*(_decode(v, hints.get(f)) for f, v in zip(cls._fields, _array(tree),
                                                               strict=False)))
    return _decode_text(tree, cls)


def _decode_text(tree: Any, cls: type) -> Any:
    try:
        if issubclass(cls, dt.timedelta):
            return _timedelta(tree)
        if cls is Decimal:
            if isinstance(tree, bool) or not isinstance(tree, str | int | float):
                raise _Mismatch(f"expected a decimal string, got {_what(tree)}")
            return Decimal(str(tree))
        if not isinstance(tree, str):
            raise _Mismatch(f"expected a string, got {_what(tree)}")
        if issubclass(cls, dt.datetime):
            return cls.fromisoformat(tree)
        if issubclass(cls, dt.date):
            return cls.fromisoformat(tree)
        if issubclass(cls, dt.time):
            return cls.fromisoformat(tree)
        if issubclass(cls, uuid.UUID):
            return cls(tree)
        if issubclass(cls, bytes | bytearray):
            return cls(base64.b64decode(tree, validate=True))
    except (ValueError, InvalidOperation, binascii.Error) as exc:
        raise _Mismatch(str(exc) or f"{tree!r} is not a valid {cls.__name__}") from None
    raise _Mismatch(f"{cls.__name__} is not a supported payload type")


def _timedelta(tree: Any) -> dt.timedelta:
    if isinstance(tree, int | float) and not isinstance(tree, bool):
        return dt.timedelta(seconds=tree)
    match = _ISO_DURATION.match(tree) if isinstance(tree, str) else None
    if match is None:
        raise _Mismatch(f"expected seconds or an ISO 8601 duration, got {tree!r}")
    sign, days, hours, minutes, secs = match.groups()
    delta = dt.timedelta(days=float(days or 0), hours=float(hours or 0),
                         minutes=float(minutes or 0), seconds=float(secs or 0))
    return -delta if sign else delta


def _decode_dataclass(tree: Any, cls: type) -> Any:
    if not isinstance(tree, dict):
        raise _Mismatch(f"expected an object for {cls.__name__}, got {_what(tree)}")
    hints = _class_hints(cls)
    values: dict[str, Any] = {}
    later: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name not in tree:
            no_default = (field.default is dataclasses.MISSING
                          and field.default_factory is dataclasses.MISSING)
            if no_default and field.init:
                raise _Mismatch(f"{cls.__name__} needs field {field.name!r}")
            continue
        try:
            value = _decode(tree[field.name], hints.get(field.name))
        except _Mismatch as exc:
            raise _Mismatch(f"{cls.__name__}.{field.name}: {exc}") from None
        (values if field.init else later)[field.name] = value
    obj = cls(**values)
    for name, value in later.items():
        object.__setattr__(obj, name, value)
    return obj  # keys the class does not know are ignored: older code reads newer payloads


@functools.lru_cache(maxsize=1024)
def _class_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except Exception:  # an annotation that cannot be resolved decodes as plain JSON
        return {k: v for k, v in getattr(cls, "__annotations__", {}).items()
                if not isinstance(v, str)}


# -- function signatures -------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Signature:
    """What a function receives and returns, as the converter needs it."""

    params: tuple[Any, ...]       # hints of the positional parameters, in order
    rest: Any                     # hint of *args, or None when the function has none
    returns: Any

    def decode_args(self, args: list[Any], what: str) -> list[Any]:
        """`args` decoded by the positional parameters' hints (extra ones by *args)."""
        decoded = []
        for i, arg in enumerate(args):
            hint = self.params[i] if i < len(self.params) else self.rest
            decoded.append(decode(arg, hint, f"{what} (argument {i + 1})"))
        return decoded


_PLAIN = Signature((), None, None)


def signature(fn: Callable[..., Any] | None, skip: int = 0) -> Signature:
    """The hints of `fn`'s parameters (after the first `skip`) and of its return value."""
    if fn is None:
        return _PLAIN
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    if code is None:  # a callable object, a builtin: not worth a cache entry
        return _compute_signature(fn, skip)
    # Keyed by the code object, not the function: handlers are often closures made anew on
    # every replay, and a cache keyed by them would keep each run's state alive.
    key = (code, skip, inspect.ismethod(fn))
    found = _signatures.get(key)
    if found is None:
        found = _signatures[key] = _compute_signature(fn, skip)
        if len(_signatures) > 4096:
            _signatures.pop(next(iter(_signatures)))
    return found


_signatures: dict[tuple[Any, int, bool], Signature] = {}


def _compute_signature(fn: Callable[..., Any], skip: int) -> Signature:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return _PLAIN
    hints = _function_hints(fn)
    params: list[Any] = []
    rest = None
    for param in list(sig.parameters.values())[skip:]:
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            params.append(hints.get(param.name))
        elif param.kind is param.VAR_POSITIONAL:
            rest = hints.get(param.name, Any)
    return Signature(tuple(params), rest, _unwrap_awaitable(hints.get("return")))


def _function_hints(fn: Callable[..., Any]) -> Mapping[str, Any]:
    target = getattr(fn, "__func__", fn)
    if not hasattr(target, "__annotations__"):
        target = type(target).__call__  # a callable object: its method's annotations
    code = getattr(target, "__code__", None)
    cells = getattr(target, "__closure__", None) or ()
    closure: dict[str, Any] = {}
    for name, cell in zip(code.co_freevars if code else (), cells, strict=False):
        try:
            closure[name] = cell.cell_contents
        except ValueError:  # a cell not yet filled
            pass
    try:
        return typing.get_type_hints(target, localns=closure, include_extras=True)
    except Exception:  # resolve what can be resolved; the rest decodes as plain JSON
        pass
    hints = {}
    namespace = {**getattr(target, "__globals__", {}), **closure}
    for name, annotation in getattr(target, "__annotations__", {}).items():
        try:
            is_text = isinstance(annotation, str)
            hints[name] = eval(annotation, namespace) if is_text else annotation
        except Exception:
            continue
    return hints


def _unwrap_awaitable(hint: Any) -> Any:
    """`Awaitable[T]` / `Coroutine[..., T]` -> T: what awaiting the call gives."""
    origin = typing.get_origin(hint)
    if _is_abc(origin, "Awaitable", "Coroutine"):
        return typing.get_args(hint)[-1]
    return hint


# -- naming -------------------------------------------------------------------------------
def _name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__qualname__
    return str(hint).replace("typing.", "")


def _what(tree: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(tree), type(tree).__name__)
