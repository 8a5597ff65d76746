"""The API's query values that are more than a type: RFC 3339 times and page tokens."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Any

from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError


def parse_time(name: str, text: str | None) -> datetime | None:
    """An RFC 3339 date-time, what `format: date-time` means (pydantic would also take a
    number, a time without a zone, ...); else a 400. A leap second counts as :59."""
    if text is None:
        return None
    if match := _RFC3339.fullmatch(text):
        try:
            return datetime.fromisoformat(
                f"{match['date']}T{match['time'].replace(':60', ':59')}{match['zone']}".upper())
        except ValueError:
            pass
    raise RequestValidationError([{"type": "value_error", "loc": ("query", name), "msg":
                                   "not an RFC 3339 date-time such as 2026-01-01T00:00:00Z"}])


_RFC3339 = re.compile(r"(?P<date>\d{4}-\d{2}-\d{2})[Tt](?P<time>\d{2}:\d{2}:\d{2}(?:\.\d+)?)"
                      r"(?P<zone>[Zz]|[+-]\d{2}:\d{2})", re.ASCII)


def encode_token(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def decode_token(token: str) -> dict[str, Any]:
    """The store key a `next_token` carries (the store refuses one it did not hand out)."""
    try:
        key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        key = None
    if not isinstance(key, dict):
        raise RequestValidationError([{"type": "value_error", "loc": ("query", "next_token"),
                                       "msg": "not a token this API issued"}])
    return key
