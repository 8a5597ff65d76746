"""The simulation of DESIGN §5: seeded workloads over the whole model, and the invariants of
§3 checked after each schedule (`workload`, `invariants`), played by `driver` under the
seeded scheduler of `choices`."""
