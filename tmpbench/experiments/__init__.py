"""Experiments: orchestrate many runs and turn them into decisions.

* :mod:`~tmpbench.experiments.sweep`  -- every pruner at every budget under one calibration set, one
  recovery recipe and the same items and seeds (one ``tmpbench run`` folder each, plus the teacher);
* :mod:`~tmpbench.experiments.ablate` -- TMP ablations (tree depth, policy mix, architecture
  transfer) as tables with CIs and paired tests;
* :mod:`~tmpbench.experiments.gate`   -- the paired per-prompt regression gate against a baseline.

Experiments sit above :mod:`tmpbench.run` (they launch runs) and :mod:`tmpbench.report` (they
tabulate what the runs wrote); reports never launch anything.
"""
