"""ostinato benchmarks: run them with `python -m benchmarks.run` from the repository root.

Modules: `harness` (environments, timing, the figures' constants), `workloads` (W1-W4 and the
engine-alone W1'), `replay`, `imports` (handler import times), `aws_requests` (AWS request
counting and capacity estimates), `profiling` (cProfile of W1), `report` (the printed table),
`run` (the command line). `apps` holds the benchmarked workflows; `local_stack` times
`ostinato dev` over HTTP.
"""
