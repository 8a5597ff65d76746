"""`Record`: frozen value classes that cost almost nothing to define.

`@dataclass(frozen=True)` compiles six methods per class with `exec` (~0.5 ms each class on
these machines); the wire protocol has thirty classes and every Lambda handler imports it at
cold start. A `Record` subclass declares its fields as annotations, like a dataclass, and
shares one generic `__init__`, `__eq__`, `__hash__` and `__repr__`. `dataclass_transform`
tells type checkers that subclasses get a dataclass-style constructor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError
from typing import Any, ClassVar, dataclass_transform

_MISSING = object()


class Factory:
    """A default built per instance (what `field(default_factory=...)` returns)."""

    __slots__ = ("make",)

    def __init__(self, make: Any) -> None:
        self.make = make


class _Field:
    __slots__ = ("compare", "default")

    def __init__(self, default: Any, compare: bool) -> None:
        self.default, self.compare = default, compare


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None,
          compare: bool = True) -> Any:
    """As `dataclasses.field`: a per-instance default, or a field equality ignores."""
    value = Factory(default_factory) if default_factory is not None else default
    return value if compare else _Field(value, compare)


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
class Record:
    """Base of frozen records: fields from annotations (ClassVar ones excluded), in MRO
    order, with the class attribute of the same name as the default."""

    FIELDS: ClassVar[tuple[str, ...]] = ()
    _DEFAULTS: ClassVar[dict[str, Any]] = {}
    _COMPARED: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 - own only
        own = [name for name, kind in annotations.items()
               if not str(kind).startswith(("ClassVar", "typing.ClassVar"))]
        cls.FIELDS = tuple(dict.fromkeys([*cls.FIELDS, *own]))
        defaults = dict(cls._DEFAULTS)
        ignored = set(cls.FIELDS) - set(cls._COMPARED) if cls._COMPARED else set()
        for name in own:
            value = cls.__dict__.get(name, _MISSING)
            if isinstance(value, _Field):
                ignored.add(name)
                value = value.default
                setattr(cls, name, value)
            if value is _MISSING:
                defaults.pop(name, None)
            else:
                defaults[name] = value
        cls._DEFAULTS = defaults
        cls._COMPARED = tuple(name for name in cls.FIELDS if name not in ignored)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self.FIELDS
        given = len(args)
        if given > len(fields):
            raise TypeError(f"{type(self).__name__} takes {len(fields)} arguments")
        put = object.__setattr__
        for name, value in zip(fields, args, strict=False):
            put(self, name, value)
        if given == len(fields) and not kwargs:  # the common case: every field positional
            return
        for name, value in kwargs.items():
            if name not in fields:
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
            if name in fields[:given]:
                raise TypeError(f"{type(self).__name__} got {name!r} twice")
            put(self, name, value)
        for name in fields[given:]:
            if name not in kwargs:
                default = self._DEFAULTS.get(name, _MISSING)
                if default is _MISSING:
                    raise TypeError(f"{type(self).__name__} is missing {name!r}")
                put(self, name, default.make() if isinstance(default, Factory) else default)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def _compared(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._COMPARED)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._compared() == other._compared()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._compared()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS)
        return f"{type(self).__name__}({inner})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def replace(self, **changes: Any) -> Any:
        """A copy with `changes` applied."""
        return type(self)(**{**dict(zip(self.FIELDS, self._values(), strict=True)), **changes})
