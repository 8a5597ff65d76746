"""cProfile of one W1 run: time per layer and the top functions."""

from __future__ import annotations

import cProfile
import os
import pstats
from typing import Any

from . import apps
from .harness import W1_STEPS, warm_env


def _loc(key: tuple[str, int, str]) -> str:
    filename, line, func = key
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line}({func})" if line else func


def _cum(stats: pstats.Stats, path_suffix: str, func: str | None = None) -> float:
    """Largest cumulative time of a function matching (outermost call of a call tree)."""
    best = 0.0
    for (filename, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if filename.replace(os.sep, "/").endswith(path_suffix) and (func is None or name == func):
            best = max(best, ct)
    return best


def profile_w1(top: int = 15) -> dict[str, Any]:
    with warm_env() as e:
        prof = cProfile.Profile()
        prof.enable()
        e.client.start_workflow(apps.sequential, W1_STEPS, id="profiled").result()
        prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt  # type: ignore[attr-defined]
    engine_calls = sum(_cum(stats, "ostinato/_engine/__init__.py", f) for f in
                       ("handle_workflow_messages", "handle_activity_task", "handle_due"))
    handler_calls = sum(_cum(stats, "ostinato/lambda_handlers.py", f) for f in
                        ("workflow_task", "activity_task", "timer"))
    api = _cum(stats, "botocore/client.py", "_make_api_call")
    moto = _cum(stats, "moto/core/botocore_stubber.py", "__call__")
    layers = [
        ("all AWS API calls (botocore client + moto)", api),
        ("  of which moto request handling", moto),
        ("    of which moto response serialization", _cum(stats, "moto/core/serialize.py")),
        ("  of which botocore outside moto (serialize, sign, parse)", api - moto),
        ("DynamoDB calls via pynamodb (incl. moto)", _cum(stats, "pynamodb/connection/base.py",
                                                          "dispatch")),
        ("  Store.load_batches (history read each decision)",
         _cum(stats, "ostinato/_aws/store.py", "load_batches")),
        ("replay + decide (pure core)", _cum(stats, "ostinato/_core/replay.py", "replay_history")
         + _cum(stats, "ostinato/_core/replay.py", "decide")),
        ("Powertools handler wrapping (handlers minus engine)", handler_calls - engine_calls),
        ("json.loads + json.dumps (all callers)", _cum(stats, "json/__init__.py", "loads")
         + _cum(stats, "json/__init__.py", "dumps")),
    ]
    entries = sorted(stats.stats.items(), key=lambda kv: -kv[1][3])  # type: ignore[attr-defined]
    cumulative = [{"function": _loc(k), "ncalls": v[1], "tottime": v[2], "cumtime": v[3]}
                  for k, v in entries[:top]]
    by_self = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])  # type: ignore[attr-defined]
    self_time = [{"function": _loc(k), "ncalls": v[1], "tottime": v[2], "cumtime": v[3]}
                 for k, v in by_self[:top]]
    return {"total_s": total, "layers": [{"layer": n, "seconds": s, "share": s / total}
                                         for n, s in layers],
            "top_cumulative": cumulative, "top_self": self_time}
