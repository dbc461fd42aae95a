"""Reports and decisions: comparison tables with bootstrap CIs, the quality-vs-ratio plot, the HTML
report with image grids, sweeps, ablations and regression gates. Reads only run folders
(``results.json`` + ``samples.jsonl``, schema :mod:`tmpbench.run.results`).

* :mod:`~tmpbench.report.stats`  -- bootstrap CIs, paired bootstrap, McNemar, Pareto front;
* :mod:`~tmpbench.report.tables` -- run folders -> pandas tables (md / csv / latex / html);
* :mod:`~tmpbench.report.plot`   -- quality vs ratio (PNG + SVG);
* :mod:`~tmpbench.report.html`   -- the self-contained report.html;
* :mod:`~tmpbench.experiments.sweep`, :mod:`~tmpbench.experiments.ablate`, :mod:`~tmpbench.experiments.gate`.
"""
