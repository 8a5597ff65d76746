"""The backends every contract test runs on: the in-memory backend and the AWS adapters.

`store` is parametrised over the in-memory `MemoryStore`, the DynamoDB adapter on moto (with
the dispatch lock, as the test environment runs it) and the adapter on DynamoDB Local (mark
`dynamodb_local`; skipped when it is unavailable, as the race tests are). A test that passes
on one and fails on another is a divergence of the memory backend from AWS.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ostinato._local.memory import MemoryStore
from tests.dynamodb_local import (  # noqa: F401 - fixtures, found by pytest by name
    Backend,
    dynamodb_local_fixture,
    dynamodb_local_url_fixture,
    moto_locked_fixture,
)


@pytest.fixture(name="store", params=[
    pytest.param("memory", id="memory"),
    pytest.param("moto", id="moto"),
    pytest.param("dynamodb-local", id="dynamodb-local", marks=pytest.mark.dynamodb_local),
])
def store_fixture(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh, empty store on each backend."""
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "moto":
        request.getfixturevalue("moto_locked")
        yield Backend("moto", None).new_store()
        return
    url = request.getfixturevalue("dynamodb_local")
    backend = Backend("ddblocal", url)
    yield backend.new_store()
    client = backend.client()
    for table in backend.tables:
        try:
            client.delete_table(TableName=table)
        except Exception:
            pass
