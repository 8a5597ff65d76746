"""The `Observer` port on Lambda: CloudWatch metrics as EMF lines, optional X-Ray subsegments.

Metrics: Powertools' embedded metric format. Points are kept per set of dimensions and each
set is printed as one EMF JSON line on `flush()` (the handlers flush once per invocation);
CloudWatch Logs turns the lines into metrics, with no API call and no added latency. Every
point also carries the `service` dimension (POWERTOOLS_SERVICE_NAME); the namespace is
POWERTOOLS_METRICS_NAMESPACE (template.yaml sets both to "ostinato").

Traces: the functions run with X-Ray active tracing (template.yaml Globals `Tracing: Active`),
so every invocation is traced by Lambda itself at no cold-start cost. Subsegments inside it
(replay, each activity, and every AWS SDK call, which Powertools' Tracer patches botocore
for) need the X-Ray SDK, whose import costs ~250 ms of cold start, over the 200 ms budget of
the SQS handlers. So they are off unless asked for: `OSTINATO_TRACE_SUBSEGMENTS=true`
(template parameter TraceSubsegments), on Lambda, with POWERTOOLS_TRACE_DISABLED unset and
`aws-xray-sdk` installed; only then is the Tracer imported (lazily, in `tracer_if_enabled`).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

Dimensions = tuple[tuple[str, str], ...]

TRACE_ENV = "OSTINATO_TRACE_SUBSEGMENTS"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def tracing_wanted(env: Mapping[str, str]) -> bool:
    """Subsegments asked for, on Lambda, and not disabled for Powertools (module docstring)."""
    return (bool(env.get("AWS_LAMBDA_FUNCTION_NAME")) and _truthy(env.get(TRACE_ENV))
            and not _truthy(env.get("POWERTOOLS_TRACE_DISABLED")))


def tracer_if_enabled(env: Mapping[str, str] | None = None) -> Any:
    """A Powertools Tracer when subsegments are wanted and the X-Ray SDK is installed, else
    None. The import happens here, at most once per container, never for a disabled one."""
    env = os.environ if env is None else env
    if not tracing_wanted(env) or importlib.util.find_spec("aws_xray_sdk") is None:
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(service=env.get("POWERTOOLS_SERVICE_NAME", "ostinato"))


class LambdaObserver:
    """The `Observer` port as EMF metrics and (optionally) X-Ray subsegments."""

    def __init__(self, namespace: str | None = None, service: str | None = None,
                 tracer: Any = None) -> None:
        self.namespace = namespace or os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "ostinato")
        self.service = service or os.environ.get("POWERTOOLS_SERVICE_NAME", "ostinato")
        self.tracer = tracer
        self._lock = threading.Lock()  # `ostinato dev` runs handlers in threads
        self._points: dict[Dimensions, list[tuple[str, MetricUnit, float]]] = {}

    def count(self, name: str, value: float = 1, **dimensions: str) -> None:
        self._add(name, MetricUnit.Count, value, dimensions)

    def duration(self, name: str, seconds: float, **dimensions: str) -> None:
        self._add(name, MetricUnit.Milliseconds, round(seconds * 1000, 3), dimensions)

    def span(self, name: str) -> AbstractContextManager[Any]:
        if self.tracer is None:
            return nullcontext()
        return self.tracer.provider.in_subsegment(f"## {name}")  # type: ignore[no-any-return]

    def flush(self) -> None:
        """Print one EMF line per set of dimensions recorded since the last flush."""
        with self._lock:
            points, self._points = self._points, {}
        for dimensions, values in points.items():
            metrics = EphemeralMetrics(namespace=self.namespace, service=self.service)
            for key, value in dimensions:
                metrics.add_dimension(name=key, value=value)
            for name, unit, amount in values:
                metrics.add_metric(name=name, unit=unit, value=amount)
            metrics.flush_metrics()
            metrics.clear_metrics()  # kept when POWERTOOLS_METRICS_DISABLED: drop them

    def _add(self, name: str, unit: MetricUnit, value: float,
             dimensions: Mapping[str, str]) -> None:
        key = tuple(sorted((k, v or "-") for k, v in dimensions.items()))
        with self._lock:
            self._points.setdefault(key, []).append((name, unit, value))
