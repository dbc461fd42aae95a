"""GenEval (Ghosh et al. 2023): its correctness rule and its scorer for real photos.

* :mod:`~tmpbench.scoring.geneval.rule` -- GenEval's rule and per-tag summary (pure functions);
* :mod:`~tmpbench.scoring.geneval.open_vocab` -- GenEval on real photos (open-vocabulary detector
  + CLIP colours). ShapesWorld images are judged by the same rule with the analytic detector
  (:mod:`tmpbench.scoring.shapes`).
"""
