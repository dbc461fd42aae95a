"""``tmpbench run`` and ``tmpbench generate``: generation in the suite's layout, scoring, results.

* :mod:`tmpbench.run.pipeline` -- :class:`RunConfig`, :func:`run_benchmark` (the whole arrow) and
  :func:`generate_only`;
* :mod:`tmpbench.run.generate` -- batched, seeded, resumable generation (GenEval / OneIG layouts);
* :mod:`tmpbench.scoring.engine` -- the scorers it calls (per-sample values, aggregates with CIs);
* :mod:`tmpbench.run.shard` -- accelerate sharding and the deterministic merge;
* :mod:`tmpbench.run.results` -- the typed results schema and its validator.

Example::

    from tmpbench.run import RunConfig, run_benchmark
    results = run_benchmark(RunConfig(suite="shapes-t2i", model="tiny-dit", out="out", limit=32))
"""

from tmpbench.run.pipeline import RunConfig, generate_only, run_benchmark
from tmpbench.run.results import load_results, validate_results

__all__ = ["RunConfig", "generate_only", "load_results", "run_benchmark", "validate_results"]
