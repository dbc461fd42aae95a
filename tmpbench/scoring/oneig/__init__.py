"""OneIG-Bench's judged dimensions (alignment, text, reasoning, style, diversity).

* :mod:`~tmpbench.scoring.oneig.maths` -- OneIG's formulas as pure functions;
* :mod:`~tmpbench.scoring.oneig.references` -- OneIG's reference files (answers, style embeddings,
  questions, texts): where they are found and how they are read;
* :mod:`~tmpbench.scoring.oneig.judges` -- the VQA judge and the built-in reasoning / style /
  diversity judges, loaded from local folders;
* :mod:`~tmpbench.scoring.oneig.scorer` -- :class:`~tmpbench.scoring.oneig.scorer.OneIGJudged`, the
  per-sample scorer ``tmpbench run`` uses for each dimension.
"""
