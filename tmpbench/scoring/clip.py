"""CLIP scorers: CLIPScore for text-to-image; CLIP-I, CLIP-T and directional CLIP for edits (per sample).

The maths and the open_clip loading are :mod:`tmpbench.metrics.clip_score`'s; this module decides
what each sample is compared with:

* **CLIP-I** compares the edited image with the exact target render when the suite has one
  (``world: shapes``), else with the source image;
* **CLIP-T** uses the item's target caption (``target_caption``, ``output_caption`` or
  ``edited_caption`` in its metadata); the instruction stands in when there is none;
* **directional CLIP** needs source and target captions, else the metric is "not scored".
"""

from __future__ import annotations

import numpy as np

from tmpbench.metrics import clip_score
from tmpbench.metrics.clip_score import cosine_rows, directional_similarity
from tmpbench.scoring.base import NotScored, SampleScorer, SampleView, refuse_mode
from tmpbench.shapes.render import render_ground_truth


class _ClipScorer(SampleScorer):
    metric_cls = "CLIPScore"

    def __init__(self, device: str = "cpu", world: str | None = None) -> None:
        self.metric = getattr(clip_score, self.metric_cls)(device=device)
        self.world = world  # the suite's procedural world ("shapes": exact target renders exist)

    @classmethod
    def for_suite(cls, suite, *, mode=None, device="cpu", judge=None):
        refuse_mode(cls.name, mode)
        return cls(device, suite.world)

    def available(self):
        return self.metric.available()

    def identity(self):
        return self.metric.identity()


class ClipScoreScorer(_ClipScorer):
    """CLIPScore = 100 * max(cos(image, prompt), 0) per sample (open_clip, local weights only)."""

    name, kinds, metric_cls = "clipscore", ("t2i",), "CLIPScore"

    def score(self, samples):
        b = self.metric.bundle
        vals = clip_score.clip_score(b.embed_images([s.image for s in samples]), b.embed_texts([s.item.prompt for s in samples]))
        return [{self.name: float(v)} for v in vals]


def edit_reference(s: SampleView, world: str | None) -> np.ndarray:
    """CLIP-I's reference: the exact target render in a procedural world, else the source image."""
    if world == "shapes":
        return render_ground_truth("edit", s.item.metadata, s.item.seed, s.image.shape[0])
    return s.source


def target_caption(item) -> str | None:
    """The caption of the edited image, where the benchmark gives one."""
    meta = item.metadata if isinstance(item.metadata, dict) else {}
    for key in ("target_caption", "output_caption", "edited_caption"):
        if meta.get(key):
            return str(meta[key])
    return None


class ClipImageScorer(_ClipScorer):
    """CLIP-I: cos(edited, reference) where the reference is the target render, else the source."""

    name, kinds, metric_cls = "clip_i", ("edit",), "CLIPImageSimilarity"

    def score(self, samples):
        b = self.metric.bundle
        vals = cosine_rows(b.embed_images([s.image for s in samples]), b.embed_images([edit_reference(s, self.world) for s in samples]))
        return [{self.name: float(v)} for v in vals]


class ClipTextScorer(_ClipScorer):
    """CLIP-T: cos(edited image, target caption); the instruction stands in when no caption exists."""

    name, kinds, metric_cls = "clip_t", ("edit",), "CLIPTextSimilarity"

    def score(self, samples):
        b = self.metric.bundle
        texts = [target_caption(s.item) or s.item.prompt for s in samples]
        vals = cosine_rows(b.embed_images([s.image for s in samples]), b.embed_texts(texts))
        return [{self.name: float(v)} for v in vals]


class ClipDirectionalScorer(_ClipScorer):
    """Directional CLIP between (source -> edited) and (source caption -> target caption)."""

    name, kinds, metric_cls = "clip_dir", ("edit",), "DirectionalCLIPSimilarity"

    def score(self, samples):
        meta = [s.item.metadata if isinstance(s.item.metadata, dict) else {} for s in samples]
        src_caps = [m.get("source_caption") or m.get("input_caption") for m in meta]
        tgt_caps = [target_caption(s.item) for s in samples]
        if any(c is None for c in src_caps + tgt_caps):
            raise NotScored("directional CLIP needs source and target captions, which this suite's items do not carry")
        b = self.metric.bundle
        vals = directional_similarity(
            b.embed_images([s.source for s in samples]), b.embed_images([s.image for s in samples]),
            b.embed_texts(src_caps), b.embed_texts(tgt_caps),
        )
        return [{self.name: float(v)} for v in vals]
