"""Learned judges for real-image suites: OneIG-Bench's judged dimensions and GenEval on real photos.

Nothing here downloads. Each judge is loaded from a local path (an environment variable, or an
object passed in code); without it the dimension is recorded as ``"not scored: <reason>"``.

OneIG-Bench (maths re-implemented from the benchmark's description and scripts):

* **alignment** -- a VQA judge (OneIG: Qwen2.5-VL-7B) answers each prompt's yes/no questions per
  cell of the 2x2 grid; a question whose *parent* question (``Q_D/<category>[_zh].json``:
  ``{"<id>": {"question": {qid: text}, "dependency": {qid: [parent qids, 0 = none]}}}``) was answered
  "no" scores 0 (:func:`alignment_score`); the prompt's value is the mean over questions and cells.
* **text** (Text_Rendering prompts) -- the judge's OCR of each cell against ``text_content.csv``:
  edit distance ED, completion rate CR (ED == 0) and word accuracy WAC (matched ground-truth words /
  ground-truth words); ``text score = 1 - min(M, ED) * (1 - CR) * (1 - WAC) / M`` with M = 100 (EN)
  or 50 (ZH) (:func:`text_score`), computed from the set means, as OneIG does.
* **reasoning** (Knowledge_Reasoning) -- cosine between the image and the reference answer text
  (``scripts/reasoning/gt_answer[_zh].json``) in LLM2CLIP's joint embedding; **style**
  (Anime_Stylization) -- ``(max(max_r CSD.ref_r, 0) + max(max_r SE.ref_r, 0)) / 2`` against the
  style's three references in ``scripts/style/CSD_embed.pt`` and ``SE_embed.pt``; **diversity** --
  mean pairwise DreamSim distance ``1 - cos`` between a prompt's non-black cells.
  Built-in judges load OneIG's own models and reference files from local folders
  (:mod:`tmpbench.run.oneig_judges`: LLM2CLIP or an explicitly named CLIP stand-in, CSD +
  OneIG-StyleEncoder with ``CSD_embed.pt``/``SE_embed.pt``, DreamSim or a named stand-in; see its
  docstring for the exact maths and environment variables). A plug-in judge given in code or by
  ``TMPBENCH_ONEIG_<DIM>_JUDGE=module:factory`` (``factory(device)`` returns it) overrides them: it
  answers ``reasoning_score``/``style_score``/``diversity_score``, or is an *embedding judge* with
  ``embed_images(list[np.ndarray]) -> Tensor`` (and ``embed_texts`` for reasoning,
  ``style_reference(style) -> Tensor`` for style).

GenEval on real photos -- an open-vocabulary detector through transformers (OWLv2, local weights in
``$TMPBENCH_GENEVAL_DETECTOR``) with GenEval's thresholds (0.3, 0.9 for counting, 16 objects per
class), CLIP colour classification of each box crop (``"a photo of a {color} {class}"`` over GenEval's
ten colours, open_clip with local weights), then GenEval's rule (:mod:`tmpbench.scoring.geneval_rule`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tmpbench.errors import DataFormatError, OfflineError, TmpbenchError
from tmpbench.run.score import SampleScorer, _NotScored

VQA_ENV = "TMPBENCH_ONEIG_VQA_JUDGE"  # local directory of a transformers image-text-to-text model
QD_ENV = "TMPBENCH_ONEIG_QD_DIR"  # OneIG's scripts/alignment/Q_D folder
TEXT_CSV_ENV = "TMPBENCH_ONEIG_TEXT_CSV"  # OneIG's scripts/text/text_content[_zh].csv
DETECTOR_ENV = "TMPBENCH_GENEVAL_DETECTOR"  # local OWLv2 directory

GENEVAL_THRESHOLD = 0.3
GENEVAL_COUNTING_THRESHOLD = 0.9
GENEVAL_MAX_OBJECTS = 16


# ------------------------------------------------------------------------------------------------
# pure maths
def alignment_score(answers: dict[int, float], dependencies: dict[int, Sequence[int]]) -> float:
    """Mean over questions of the answers, a question zeroed when any parent (id != 0) scored 0.

    >>> alignment_score({1: 1.0, 2: 1.0, 3: 1.0}, {1: [0], 2: [1], 3: [1]})
    1.0
    >>> alignment_score({1: 0.0, 2: 1.0, 3: 1.0}, {1: [0], 2: [1], 3: [0]})
    0.3333333333333333
    """
    if not answers:
        raise ValueError("alignment_score needs at least one answered question")
    filtered = dict(answers)
    for qid, parents in dependencies.items():
        if qid in filtered and any(p != 0 and answers.get(p, 1.0) == 0 for p in parents):
            filtered[qid] = 0.0
    return float(sum(filtered.values()) / len(filtered))


def levenshtein(a: str, b: str) -> int:
    """Character edit distance (insert, delete, substitute all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def word_matches(ground_truth: str, ocr: str) -> tuple[int, int]:
    """``(ground-truth words found in the OCR, counted with multiplicity; ground-truth words)``."""
    from collections import Counter

    gt, found = Counter(ground_truth.split()), Counter(ocr.split())
    return sum(min(n, found[w]) for w, n in gt.items()), sum(gt.values())


def text_score(ed: float, cr: float, wac: float, max_edit_distance: int = 100) -> float:
    """OneIG's text score ``1 - min(M, ED) * (1 - CR) * (1 - WAC) / M``.

    >>> text_score(0.0, 1.0, 1.0)
    1.0
    >>> text_score(200.0, 0.0, 0.0)
    0.0
    """
    return 1.0 - min(max_edit_distance, ed) * (1.0 - cr) * (1.0 - wac) / max_edit_distance


def normalise_text(text: str) -> str:
    """Lower-case, collapse whitespace (the comparison both sides go through)."""
    return " ".join(str(text).lower().split())


def mean_pairwise_distance(embeddings) -> float:
    """Mean over pairs of ``1 - cos`` between rows (diversity of one prompt's images)."""
    import torch

    e = torch.as_tensor(embeddings, dtype=torch.float64)
    e = e / e.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    n = e.shape[0]
    if n < 2:
        raise ValueError("diversity needs at least two images")
    sim = e @ e.T
    iu = torch.triu_indices(n, n, 1)
    return float((1.0 - sim[iu[0], iu[1]]).mean())


# ------------------------------------------------------------------------------------------------
# judge interfaces
class VQAJudge(Protocol):
    def answer(self, images: list[np.ndarray], question: str) -> list[bool]: ...
    def ocr(self, images: list[np.ndarray]) -> list[str]: ...
    def identity(self) -> dict: ...


class TransformersVQAJudge:
    """A local transformers image-text-to-text model (e.g. Qwen2.5-VL) answering yes/no and OCR prompts."""

    def __init__(self, path: str | Path, device: str = "cpu", max_new_tokens: int = 128) -> None:
        path = Path(path).expanduser()
        if not path.is_dir():
            raise OfflineError(f"VQA judge directory {path} does not exist; set ${VQA_ENV} to a local model folder")
        from transformers import AutoModelForImageTextToText, AutoProcessor

        try:
            self.processor = AutoProcessor.from_pretrained(path, local_files_only=True)
            self.model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True).to(device).eval()
        except (OSError, ValueError) as exc:
            raise OfflineError(f"cannot load the VQA judge from {path} ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
        self.path, self.device, self.max_new_tokens = path, device, max_new_tokens

    def _ask(self, image: np.ndarray, text: str, max_new_tokens: int) -> str:
        import torch
        from PIL import Image

        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = self.processor(text=[prompt], images=[Image.fromarray(image)], return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        return self.processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[0].strip()

    def answer(self, images, question):
        q = f"{question} Please answer Yes or No."
        return [self._ask(im, q, 4).lower().startswith("yes") for im in images]

    def ocr(self, images):
        return [self._ask(im, "Recognize all the text in the image. Output only the text.", self.max_new_tokens) for im in images]

    def identity(self) -> dict:
        from tmpbench.metrics.features import library_version

        weights = sorted(self.path.glob("*.safetensors"))
        return {
            "name": "vqa-judge",
            "library": "transformers",
            "library_version": library_version("transformers"),
            "weights_path": str(self.path),
            "weights_sha256": {p.name: _sha(p) for p in weights},
        }


def _sha(path: Path) -> str:
    from tmpbench.metrics.features import sha256_file

    return sha256_file(path)


def _factory_from_env(var: str, device: str):
    """``module:factory`` in ``$var`` -> ``factory(device)``; None when unset."""
    target = os.environ.get(var)
    if not target:
        return None
    from tmpbench.models.base import resolve_target

    try:
        return resolve_target(target)(device)
    except (ImportError, AttributeError) as exc:
        raise TmpbenchError(f"${var}={target} cannot be imported ({exc}); expected module:factory") from None


# ------------------------------------------------------------------------------------------------
# OneIG scorers
_ONEIG_JUDGE_NEEDS = {
    "oneig_alignment": f"a VQA judge (OneIG uses Qwen2.5-VL-7B-Instruct): set ${VQA_ENV}=DIR and ${QD_ENV}=OneIG's scripts/alignment/Q_D",
    "oneig_text": f"an OCR-capable VQA judge: set ${VQA_ENV}=DIR and ${TEXT_CSV_ENV}=OneIG's scripts/text/text_content.csv",
    # built-in loaders: tmpbench.run.oneig_judges; $TMPBENCH_ONEIG_<DIM>_JUDGE=module:factory overrides them
    "oneig_reasoning": "an image-text judge (OneIG uses LLM2CLIP): set $TMPBENCH_ONEIG_REASONING_DIR=folder with the LLM2CLIP models (or $TMPBENCH_ONEIG_REASONING_SUBSTITUTE=CLIP folder) and $TMPBENCH_ONEIG_SCRIPTS=OneIG's scripts folder",
    "oneig_style": "OneIG's style encoders (CSD and OneIG-StyleEncoder): set $TMPBENCH_ONEIG_STYLE_DIR=folder with checkpoint.pth and OneIG-StyleEncoder/, and $TMPBENCH_ONEIG_SCRIPTS=OneIG's scripts folder",
    "oneig_diversity": "an image-similarity judge (OneIG uses DreamSim): set $TMPBENCH_ONEIG_DIVERSITY_DIR=DreamSim's weights folder (or $TMPBENCH_ONEIG_DIVERSITY_SUBSTITUTE=CLIP folder)",
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
        self.zh = suite.name.endswith("zh")
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
        plugin = _factory_from_env(f"TMPBENCH_{self.name.upper()}_JUDGE", self.device)
        if plugin is not None:
            return plugin
        from tmpbench.run.oneig_judges import load_builtin_judge

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
            path = Path(os.environ[QD_ENV]) / f"{cat}{'_zh' if self.zh else ''}.json"
            if not path.is_file():
                raise _NotScored(f"question file {path} not found (set ${QD_ENV} to OneIG's scripts/alignment/Q_D)")
            self._qd[cat] = json.loads(path.read_text(encoding="utf-8"))
        entry = self._qd[cat].get(item.id)
        if entry is None:
            raise DataFormatError(f"{cat}: no questions for prompt id {item.id!r} in the Q_D file")
        q, d = entry["question"], entry["dependency"]
        q = json.loads(q) if isinstance(q, str) else q
        d = json.loads(d) if isinstance(d, str) else d
        return {int(k): v for k, v in q.items()}, {int(k): [int(p) for p in v] for k, v in d.items()}

    def _text(self, item) -> str:
        if hasattr(self._judge, "text_content"):
            return self._judge.text_content(item)
        if self._texts is None:
            import csv

            with open(os.environ[TEXT_CSV_ENV], encoding="utf-8-sig", newline="") as fh:
                self._texts = {row["id"]: row["text_content"] for row in csv.DictReader(fh)}
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
        return {self.name: text_score(ed, float(ed == 0), matched / max(total, 1), m), "text_ed": ed, "text_cr": float(ed == 0), "text_matched": matched, "text_words": total}

    def _score_reasoning(self, s):
        from tmpbench.metrics.clip_score import cosine_rows

        if hasattr(self._judge, "reasoning_score"):  # built-in judges (tmpbench.run.oneig_judges)
            return {self.name: self._judge.reasoning_score(s.item, s.image)}

        answer = self._judge.reference_answer(s.item)
        return {self.name: float(cosine_rows(self._judge.embed_images([s.image]), self._judge.embed_texts([answer]))[0])}

    def _score_style(self, s):
        from tmpbench.metrics.clip_score import cosine_rows

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
            raise _NotScored("diversity needs the prompt's four images together (OneIG grid layout)")
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


def oneig_scorer(name: str, suite, device: str = "cpu", judge: Any = None) -> OneIGJudged:
    if not suite.name.startswith("oneig"):
        raise TmpbenchError(f"metric {name!r} belongs to OneIG-Bench; suite {suite.name!r} is not a OneIG suite")
    return OneIGJudged(name, suite, device, judge)


# ------------------------------------------------------------------------------------------------
# GenEval on real photos
class Detector(Protocol):
    def detect(self, image: np.ndarray, classes: list[str]) -> dict[str, list[tuple[tuple[float, float, float, float], float]]]: ...
    def identity(self) -> dict: ...


class Owlv2Detector:
    """OWLv2 (transformers) from a local directory: text-queried boxes with scores per class."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        path = Path(path).expanduser()
        if not path.is_dir():
            raise OfflineError(f"OWLv2 directory {path} does not exist; set ${DETECTOR_ENV} to a local google/owlv2-* folder")
        from transformers import Owlv2ForObjectDetection, Owlv2Processor

        try:
            self.processor = Owlv2Processor.from_pretrained(path, local_files_only=True)
            self.model = Owlv2ForObjectDetection.from_pretrained(path, local_files_only=True).to(device).eval()
        except (OSError, ValueError) as exc:
            raise OfflineError(f"cannot load OWLv2 from {path} ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
        self.path, self.device = path, device

    def detect(self, image, classes):
        import torch
        from PIL import Image

        labels = [[f"a photo of a {c}" for c in classes]]
        inputs = self.processor(text=labels, images=Image.fromarray(image), return_tensors="pt").to(self.device)
        with torch.no_grad():
            outputs = self.model(**inputs)
        side = max(image.shape[:2])  # OWLv2 pads to a square; boxes are relative to the padded side
        res = self.processor.post_process_grounded_object_detection(outputs, threshold=0.0, target_sizes=[(side, side)])[0]
        out: dict[str, list] = {c: [] for c in classes}
        for box, score, label in zip(res["boxes"].tolist(), res["scores"].tolist(), res["labels"].tolist()):
            out[classes[label]].append((tuple(box), float(score)))
        return out

    def identity(self) -> dict:
        from tmpbench.metrics.features import library_version

        return {
            "name": "owlv2",
            "library": "transformers",
            "library_version": library_version("transformers"),
            "weights_path": str(self.path),
            "weights_sha256": {p.name: _sha(p) for p in sorted(self.path.glob("*.safetensors"))},
        }


class OpenVocabGenEval(SampleScorer):
    """GenEval correctness on real images: detector boxes + CLIP colours + GenEval's rule."""

    name = "geneval"
    category_mean = True
    kinds = ("t2i",)

    def __init__(self, device: str = "cpu", detector: Detector | None = None) -> None:
        from tmpbench.metrics.clip_score import CLIPScore

        self.device = device
        self._detector, self._error = detector, None
        if detector is None and os.environ.get(DETECTOR_ENV):
            try:
                self._detector = Owlv2Detector(os.environ[DETECTOR_ENV], device)
            except TmpbenchError as exc:
                self._error = str(exc)
        self._clip = CLIPScore(device=device)

    def available(self):
        if self._error:
            return False, self._error
        if self._detector is None:
            return False, f"GenEval on real images needs an open-vocabulary detector: set ${DETECTOR_ENV} to a local OWLv2 folder"
        ok, reason = self._clip.available()
        if not ok:
            return False, f"GenEval colour classification needs CLIP: {reason}"
        return True, ""

    def identity(self):
        ident = {
            "name": self.name,
            "mode": "open-vocabulary",
            "library": "tmpbench",
            "thresholds": {"default": GENEVAL_THRESHOLD, "counting": GENEVAL_COUNTING_THRESHOLD, "max_objects": GENEVAL_MAX_OBJECTS},
            "weights_path": None,
            "weights_sha256": None,
            "colour_classifier": self._clip.identity(),
        }
        if self._detector is not None:
            ident["detector"] = self._detector.identity()
        ok, reason = self.available()
        if not ok:
            ident["unavailable"] = reason
        return ident

    def _colours(self, image: np.ndarray, boxes: list, cls: str) -> list[str]:
        from tmpbench.metrics.clip_score import normalize
        from tmpbench.scoring.geneval_rule import GENEVAL_COLORS

        if not boxes:
            return []
        b = self._clip.bundle
        crops = []
        for x0, y0, x1, y1 in boxes:
            x0, y0 = max(0, int(x0)), max(0, int(y0))
            x1, y1 = min(image.shape[1], max(int(x1), x0 + 1)), min(image.shape[0], max(int(y1), y0 + 1))
            crops.append(np.ascontiguousarray(image[y0:y1, x0:x1]))
        img = normalize(b.embed_images(crops))
        txt = normalize(b.embed_texts([f"a photo of a {c} {cls}" for c in GENEVAL_COLORS]))
        return [GENEVAL_COLORS[i] for i in (img @ txt.T).argmax(dim=1).tolist()]

    def score(self, samples):
        from tmpbench.scoring.geneval_rule import DetectedObject, evaluate

        out = []
        for s in samples:
            meta = s.item.metadata
            classes = sorted({r["class"] for key in ("include", "exclude") for r in meta.get(key, [])})
            found = self._detector.detect(s.image, classes)
            threshold = GENEVAL_COUNTING_THRESHOLD if meta.get("tag") == "counting" else GENEVAL_THRESHOLD
            objects = {}
            for cls in classes:
                kept = sorted((d for d in found.get(cls, []) if d[1] >= threshold), key=lambda d: -d[1])[:GENEVAL_MAX_OBJECTS]
                colours = self._colours(s.image, [d[0] for d in kept], cls)
                objects[cls] = [DetectedObject(tuple(d[0]), c) for d, c in zip(kept, colours)]
            correct, reason = evaluate(objects, meta)
            out.append({self.name: float(correct), "geneval_reason": reason})
        return out
