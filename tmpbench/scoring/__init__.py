"""Scorers: turn a folder of generated images into per-sample verdicts and per-category scores.

* :mod:`tmpbench.scoring.geneval_rule` - GenEval's correctness rule and per-tag summary (pure functions).
* :mod:`tmpbench.scoring.shapes_scoring` - ShapesWorld T2I and editing scorers built on the analytic
  detector (:mod:`tmpbench.shapes.detector`).
"""

from tmpbench.scoring.geneval_rule import POSITION_THRESHOLD, evaluate, relative_position, summarize
from tmpbench.scoring.shapes_scoring import PSNR_CAP, score_edit_folder, score_t2i_folder

__all__ = [
    "POSITION_THRESHOLD",
    "PSNR_CAP",
    "evaluate",
    "relative_position",
    "score_edit_folder",
    "score_t2i_folder",
    "summarize",
]
