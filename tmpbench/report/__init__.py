"""Reports: comparison tables with bootstrap CIs, the quality-vs-ratio plot and the HTML report
with image grids. Reads only run folders (``results.json`` + ``samples.jsonl``, schema
:mod:`tmpbench.run.results`); it never prunes, generates or scores (an import contract).

* :mod:`~tmpbench.report.stats`  -- bootstrap CIs, paired bootstrap, McNemar, Pareto front;
* :mod:`~tmpbench.report.tables` -- run folders -> pandas tables (md / csv / latex / html);
* :mod:`~tmpbench.report.plot`   -- quality vs ratio (PNG + SVG);
* :mod:`~tmpbench.report.html`   -- the self-contained report.html.

Sweeps, ablations and the regression gate launch runs, so they live in :mod:`tmpbench.experiments`.
"""
