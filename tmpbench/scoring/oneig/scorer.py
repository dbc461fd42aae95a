"""OneIG-Bench's judged dimensions as a per-sample scorer: alignment, text, reasoning, style, diversity.

Each dimension is one :class:`OneIGJudged` over the cells of the suite's 2x2 grids; prompts outside
a dimension's category (text: ``Text_Rendering``, reasoning: ``Knowledge_Reasoning``, style:
``Anime_Stylization``) get no value, and diversity has one value per prompt (on cell 0, from all
four cells). The judge comes from code (``judges={name: judge}``), from ``$TMPBENCH_ONEIG_<DIM>_JUDGE``
(``module:factory``), or from the built-in loaders (:mod:`tmpbench.scoring.oneig.judges`); without
one the dimension is "not scored: <what to provide>". A plug-in judge answers
``reasoning_score``/``style_score``/``diversity_score``, or is an *embedding judge* with
``embed_images(list[np.ndarray]) -> Tensor`` (and ``embed_texts`` + ``reference_answer(item)`` for
reasoning, ``style_reference(item) -> Tensor`` for style).

OneIG's text score is computed from the set means of ED, CR and WAC (:meth:`OneIGJudged.summary`),
so its ``aggregation`` is ``benchmark_formula``; the other dimensions report the mean over cells.
Chinese suites (``language: zh``) read OneIG's ``_zh`` references and use M = 50 for text.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

import numpy as np

from tmpbench.errors import DataFormatError, TmpbenchError
from tmpbench.metrics.clip_score import cosine_rows
from tmpbench.scoring.base import NotScored, SampleScorer, refuse_mode
from tmpbench.scoring.oneig.judges import VQA_ENV, TransformersVQAJudge, factory_from_env, load_builtin_judge
from tmpbench.scoring.oneig.maths import alignment_score, levenshtein, mean_pairwise_distance, normalise_text, text_score, word_matches
from tmpbench.scoring.oneig.references import QD_ENV, TEXT_CSV_ENV, item_questions, read_question_file, read_text_contents

_ONEIG_JUDGE_NEEDS = {
    "oneig_alignment": f"a VQA judge (OneIG uses Qwen2.5-VL-7B-Instruct): set ${VQA_ENV}=DIR and ${QD_ENV}=OneIG's scripts/alignment/Q_D",
    "oneig_text": f"an OCR-capable VQA judge: set ${VQA_ENV}=DIR and ${TEXT_CSV_ENV}=OneIG's scripts/text/text_content.csv",
    # built-in loaders: tmpbench.scoring.oneig.judges; $TMPBENCH_ONEIG_<DIM>_JUDGE=module:factory overrides them
    "oneig_reasoning": (
        "an image-text judge (OneIG uses LLM2CLIP): set $TMPBENCH_ONEIG_REASONING_DIR=folder with the LLM2CLIP models "
        "(or $TMPBENCH_ONEIG_REASONING_SUBSTITUTE=CLIP folder) and $TMPBENCH_ONEIG_SCRIPTS=OneIG's scripts folder"
    ),
    "oneig_style": (
        "OneIG's style encoders (CSD and OneIG-StyleEncoder): set $TMPBENCH_ONEIG_STYLE_DIR=folder with checkpoint.pth and "
        "OneIG-StyleEncoder/, and $TMPBENCH_ONEIG_SCRIPTS=OneIG's scripts folder"
    ),
    "oneig_diversity": (
        "an image-similarity judge (OneIG uses DreamSim): set $TMPBENCH_ONEIG_DIVERSITY_DIR=DreamSim's weights folder "
        "(or $TMPBENCH_ONEIG_DIVERSITY_SUBSTITUTE=CLIP folder)"
    ),
}
_ONEIG_CATEGORY = {
    "oneig_text": "Text_Rendering",
    "oneig_reasoning": "Knowledge_Reasoning",
    "oneig_style": "Anime_Stylization",
}


class OneIGJudged(SampleScorer):
    """One of OneIG's judged dimensions; per-cell values, NaN for prompts outside its category."""

    kinds = ("t2i",)

    def __init__(self, name: str, suite, device: str = "cpu", judge: Any = None) -> None:
        self.name, self.suite, self.device = name, suite, device
        self.zh = suite.language == "zh"  # the judges read OneIG's Chinese references
        self.aggregation = "benchmark_formula" if name == "oneig_text" else "mean"
        self._judge = judge
        self._judge_error: str | None = None
        if judge is None:
            try:
                self._judge = self._load_judge()
            except TmpbenchError as exc:
                self._judge_error = str(exc)
        self._qd: dict | None = None
        self._texts: dict | None = None

    def _load_judge(self):
        if self.name in ("oneig_alignment", "oneig_text"):
            path = os.environ.get(VQA_ENV)
            return TransformersVQAJudge(path, self.device) if path else None
        plugin = factory_from_env(f"TMPBENCH_{self.name.upper()}_JUDGE", self.device)
        if plugin is not None:
            return plugin
        return load_builtin_judge(self.name, self.device, zh=self.zh)

    def available(self) -> tuple[bool, str]:
        if self._judge_error:
            return False, self._judge_error
        if self._judge is None:
            return False, f"{self.name} needs {_ONEIG_JUDGE_NEEDS[self.name]}"
        if self.name == "oneig_alignment" and not os.environ.get(QD_ENV) and not hasattr(self._judge, "questions"):
            return False, f"oneig_alignment needs OneIG's question/dependency files: set ${QD_ENV}=scripts/alignment/Q_D"
        if self.name == "oneig_text" and not os.environ.get(TEXT_CSV_ENV) and not hasattr(self._judge, "text_content"):
            return False, f"oneig_text needs OneIG's ground-truth texts: set ${TEXT_CSV_ENV}=scripts/text/text_content.csv"
        return True, ""

    def identity(self) -> dict:
        ident = {"name": self.name, "library": "tmpbench", "weights_path": None, "weights_sha256": None}
        if self._judge is not None and hasattr(self._judge, "identity"):
            ident["judge"] = self._judge.identity()
        ok, reason = self.available()
        if not ok:
            ident["unavailable"] = reason
        return ident

    # data files -----------------------------------------------------------------------------
    def _questions(self, item) -> tuple[dict[int, str], dict[int, list[int]]]:
        if hasattr(self._judge, "questions"):
            return self._judge.questions(item)
        if self._qd is None:
            self._qd = {}
        cat = item.category
        if cat not in self._qd:
            self._qd[cat] = read_question_file(cat, self.zh)
        return item_questions(self._qd[cat], cat, item.id)

    def _text(self, item) -> str:
        if hasattr(self._judge, "text_content"):
            return self._judge.text_content(item)
        if self._texts is None:
            self._texts = read_text_contents()
        if item.id not in self._texts:
            raise DataFormatError(f"no ground-truth text for prompt id {item.id!r} in ${TEXT_CSV_ENV}")
        return self._texts[item.id]

    # scoring --------------------------------------------------------------------------------
    def score(self, samples):
        out = []
        wanted = _ONEIG_CATEGORY.get(self.name)
        for s in samples:
            if wanted is not None and s.item.category != wanted:
                out.append({self.name: None})
                continue
            out.append(getattr(self, f"_score_{self.name.split('_', 1)[1]}")(s))
        return out

    def _score_alignment(self, s):
        questions, deps = self._questions(s.item)
        answers = {qid: float(self._judge.answer([s.image], text)[0]) for qid, text in questions.items()}
        return {self.name: alignment_score(answers, deps)}

    def _score_text(self, s):
        gt = normalise_text(self._text(s.item))
        ocr = normalise_text(self._judge.ocr([s.image])[0])
        ed = levenshtein(ocr, gt)
        matched, total = word_matches(gt, ocr)
        m = 50 if self.zh else 100
        value = text_score(ed, float(ed == 0), matched / max(total, 1), m)
        return {self.name: value, "text_ed": ed, "text_cr": float(ed == 0), "text_matched": matched, "text_words": total}

    def _score_reasoning(self, s):
        if hasattr(self._judge, "reasoning_score"):  # built-in judges (tmpbench.scoring.oneig.judges)
            return {self.name: self._judge.reasoning_score(s.item, s.image)}

        answer = self._judge.reference_answer(s.item)
        return {self.name: float(cosine_rows(self._judge.embed_images([s.image]), self._judge.embed_texts([answer]))[0])}

    def _score_style(self, s):
        if hasattr(self._judge, "style_score"):
            return {self.name: self._judge.style_score(s.item, s.image)}

        ref = self._judge.style_reference(s.item)
        return {self.name: float(cosine_rows(self._judge.embed_images([s.image]), ref.reshape(1, -1))[0])}

    def _score_diversity(self, s):
        # one value per prompt: computed on cell 0 from all four cells of the grid, NaN elsewhere
        if s.n != 0:
            return {self.name: None}
        cells = s.cells
        if cells is None:
            raise NotScored("diversity needs the prompt's four images together (OneIG grid layout)")
        if hasattr(self._judge, "diversity_score"):
            return {self.name: self._judge.diversity_score(cells)}
        return {self.name: mean_pairwise_distance(self._judge.embed_images(cells))}

    def summary(self, rows: list[dict]) -> dict | None:
        """OneIG's text score comes from the set means of ED, CR and WAC, not a mean of per-image scores."""
        if self.name != "oneig_text":
            return None
        parts = [r["extras"] for r in rows if r["extras"].get("text_ed") is not None]
        if not parts:
            return None
        ed = float(np.mean([p["text_ed"] for p in parts]))
        cr = float(np.mean([p["text_cr"] for p in parts]))
        wac = sum(p["text_matched"] for p in parts) / max(1, sum(p["text_words"] for p in parts))
        m = 50 if self.zh else 100
        return {"value": text_score(ed, cr, wac, m), "details": {"ED": ed, "CR": cr, "WAC": wac, "max_edit_distance": m}}


def oneig_scorer(name: str, suite, *, mode: str | None = None, device: str = "cpu", judge: Any = None) -> OneIGJudged:
    """The scorer of OneIG dimension ``name`` for ``suite`` (refused for a suite of another benchmark)."""
    refuse_mode(name, mode)
    if suite.benchmark != "oneig":
        raise TmpbenchError(f"metric {name!r} belongs to OneIG-Bench; suite {suite.name!r} is not a OneIG suite")
    return OneIGJudged(name, suite, device, judge)


# the registry's factories (tmpbench.catalog.SCORERS), one per judged dimension
oneig_alignment = partial(oneig_scorer, "oneig_alignment")
oneig_text = partial(oneig_scorer, "oneig_text")
oneig_reasoning = partial(oneig_scorer, "oneig_reasoning")
oneig_style = partial(oneig_scorer, "oneig_style")
oneig_diversity = partial(oneig_scorer, "oneig_diversity")
