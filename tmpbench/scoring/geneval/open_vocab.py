"""GenEval on real photos: an open-vocabulary detector, CLIP colours of each box, then GenEval's rule.

* detection -- OWLv2 through transformers (:class:`Owlv2Detector`, local weights in
  ``$TMPBENCH_GENEVAL_DETECTOR``; any object with ``detect(image, classes)`` and ``identity()`` can
  stand in, passed in code), kept with GenEval's thresholds: score >= 0.3 (0.9 for counting
  prompts), at most 16 objects per class, most confident first;
* colour -- CLIP classification of each box crop over ``"a photo of a {color} {class}"`` for GenEval's
  ten colours (open_clip with tmpbench's local CLIP weights, :mod:`tmpbench.metrics.clip_score`);
* verdict -- :func:`tmpbench.scoring.geneval.rule.evaluate`.

Nothing downloads: without a detector or CLIP weights, :meth:`OpenVocabGenEval.available` says
which one to provide (``"not scored: <reason>"`` in a run; one error line in ``tmpbench score``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from tmpbench.errors import OfflineError, TmpbenchError
from tmpbench.metrics.clip_score import CLIPScore, normalize
from tmpbench.provenance import library_version, sha256_file
from tmpbench.scoring.base import SampleScorer
from tmpbench.scoring.geneval.rule import GENEVAL_COLORS, DetectedObject, evaluate

DETECTOR_ENV = "TMPBENCH_GENEVAL_DETECTOR"  # local OWLv2 directory

GENEVAL_THRESHOLD = 0.3
GENEVAL_COUNTING_THRESHOLD = 0.9
GENEVAL_MAX_OBJECTS = 16


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
        return {
            "name": "owlv2",
            "library": "transformers",
            "library_version": library_version("transformers"),
            "weights_path": str(self.path),
            "weights_sha256": {p.name: sha256_file(p) for p in sorted(self.path.glob("*.safetensors"))},
        }


class OpenVocabGenEval(SampleScorer):
    """GenEval correctness on real images: detector boxes + CLIP colours + GenEval's rule."""

    name = "geneval"
    aggregation = "category_mean"
    kinds = ("t2i",)

    def __init__(self, device: str = "cpu", detector: Detector | None = None) -> None:
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
