"""Fidelity to the teacher, per sample: PSNR, SSIM and LPIPS of a pruned model's image against the
unpruned teacher's image from the same prompt and seed (the maths: :mod:`tmpbench.metrics.fidelity`).

These scorers need teacher images (``needs_teacher``): the engine refuses them for unpruned runs.
"""

from __future__ import annotations

from tmpbench.metrics import fidelity
from tmpbench.metrics.fidelity import paired_float_images, psnr_per_image, ssim_per_image
from tmpbench.scoring.base import SampleScorer
from tmpbench.scoring.shapes import PSNR_CAP


class _TeacherScorer(SampleScorer):
    needs_teacher = True
    metric_cls = "TeacherPSNR"

    def __init__(self) -> None:
        self.metric = getattr(fidelity, self.metric_cls)()

    def available(self):
        return self.metric.available()

    def identity(self):
        return self.metric.identity()


class TeacherPSNRScorer(_TeacherScorer):
    """PSNR (dB) of the pruned image against the teacher's image from the same seed.

    An identical pair has infinite PSNR; per sample it is capped at 100 dB (as the ShapesWorld
    preservation PSNR is) so that means and CIs stay finite and JSON-safe.
    """

    name, metric_cls = "psnr_teacher", "TeacherPSNR"

    def score(self, samples):
        a, b = paired_float_images([s.image for s in samples], [s.teacher for s in samples])
        return [{self.name: min(float(v), PSNR_CAP)} for v in psnr_per_image(a, b)]


class TeacherSSIMScorer(_TeacherScorer):
    """SSIM of the pruned image against the teacher's image from the same seed."""

    name, metric_cls = "ssim_teacher", "TeacherSSIM"

    def score(self, samples):
        a, b = paired_float_images([s.image for s in samples], [s.teacher for s in samples])
        return [{self.name: float(v)} for v in ssim_per_image(a, b)]


class TeacherLPIPSScorer(_TeacherScorer):
    """LPIPS (AlexNet) of the pruned image against the teacher's image (lower is better)."""

    name, metric_cls, higher_is_better = "lpips_teacher", "TeacherLPIPS", False

    def score(self, samples):
        out = []
        for s in samples:  # the metric sums a batch; one pair per call gives per-sample values
            self.metric.reset()
            self.metric.update([s.image], [s.teacher])
            out.append({self.name: float(self.metric.compute())})
        return out
