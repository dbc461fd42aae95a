"""Scoring: turning generated samples into per-sample values and reported numbers.

``tmpbench run`` and ``tmpbench score`` both go through :mod:`~tmpbench.scoring.engine` and the
scorers registered in :data:`tmpbench.catalog.SCORERS` (metric name -> factory for a suite):

* :mod:`~tmpbench.scoring.base` -- the interface: ``SampleView``, ``SampleScorer``, ``SetScorer``,
  ``NotScored`` and the aggregations a result records;
* :mod:`~tmpbench.scoring.aggregate` -- the stratified bootstrap and the ``results.json`` metric entry;
* :mod:`~tmpbench.scoring.engine` -- metric lists, building scorers for a suite, running them;
* :mod:`~tmpbench.scoring.dispatch` -- metrics whose implementation depends on a suite trait (geneval);
* :mod:`~tmpbench.scoring.shapes` -- ShapesWorld: GenEval with the analytic detector, edit success,
  preservation;
* :mod:`~tmpbench.scoring.geneval` -- GenEval's rule, and GenEval on real photos (open-vocabulary);
* :mod:`~tmpbench.scoring.oneig` -- OneIG-Bench's maths, reference files, judges and scorer;
* :mod:`~tmpbench.scoring.clip` -- CLIPScore, CLIP-I, CLIP-T, directional CLIP;
* :mod:`~tmpbench.scoring.fidelity` -- PSNR / SSIM / LPIPS of a pruned model against its teacher;
* :mod:`~tmpbench.scoring.fid` -- FID / KID of the set against ground-truth renders.

The maths and the encoders live one layer down, in :mod:`tmpbench.metrics`.
"""
