"""``make bench``: the project's benchmarks, run on the local stack and reported as ratios to same-run baselines.

Every number in ``docs/benchmarks.md`` is paired with a baseline measured in the same run on the same machine, so
the ratios travel between machines even though the absolute numbers do not. Modules: one per benchmark
(:mod:`~scripts.bench.streaming`, :mod:`~scripts.bench.polling`, :mod:`~scripts.bench.cold_start`,
:mod:`~scripts.bench.throughput`, :mod:`~scripts.bench.authorizer`), the shared pieces (:mod:`~scripts.bench.stats`,
:mod:`~scripts.bench.frames`, :mod:`~scripts.bench.harness`, :mod:`~scripts.bench.machine`) and the output
(:mod:`~scripts.bench.report`, :mod:`~scripts.bench.plot`).
"""
