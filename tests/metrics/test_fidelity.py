"""Fidelity to the teacher: PSNR/SSIM values, pairing checks, LPIPS only with local weights."""

import math

import numpy as np
import pytest
import torch

from tmpbench.errors import OfflineError, TmpbenchError
from tmpbench.metrics.fidelity import TeacherLPIPS, TeacherPSNR, TeacherSSIM, lpips_backbone_path


def _pair(delta: int, n: int = 3, size: int = 32):
    rng = np.random.default_rng(0)
    teacher = rng.integers(20, 200, (n, size, size, 3), dtype=np.uint8)
    return teacher + np.uint8(delta), teacher


def test_psnr_known_value_and_accumulation():
    pruned, teacher = _pair(5)
    m = TeacherPSNR()
    m.update(pruned[:1], teacher[:1])
    m.update(pruned[1:], teacher[1:])
    assert float(m.compute()) == pytest.approx(20 * math.log10(255 / 5), rel=1e-5)  # MSE = (5/255)^2
    assert m.higher_is_better and m.identity()["library"] == "torchmetrics"


def test_ssim_identical_is_one_and_drops_with_noise():
    _, teacher = _pair(0)
    same = TeacherSSIM()
    same.update(teacher, teacher)
    assert float(same.compute()) == pytest.approx(1.0, abs=1e-6)
    noisy = np.clip(teacher.astype(int) + np.random.default_rng(1).integers(-40, 40, teacher.shape), 0, 255).astype(np.uint8)
    other = TeacherSSIM()
    other.update(noisy, teacher)
    from torchmetrics.image import StructuralSimilarityIndexMeasure

    ref = StructuralSimilarityIndexMeasure(data_range=1.0)
    ref.update(torch.from_numpy(noisy).permute(0, 3, 1, 2) / 255.0, torch.from_numpy(teacher).permute(0, 3, 1, 2) / 255.0)
    assert float(other.compute()) == pytest.approx(float(ref.compute()), rel=1e-5)  # mean of per-image SSIM
    assert float(other.compute()) < 0.95


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_pairing_errors():
    pruned, teacher = _pair(1)
    with pytest.raises(TmpbenchError, match="one teacher image per pruned image, got 3 and 2"):
        TeacherPSNR().update(pruned, teacher[:2])
    with pytest.raises(TmpbenchError, match=r"pair 0: pruned image \(16, 16, 3\) and teacher image \(32, 32, 3\) differ"):
        TeacherSSIM().update([pruned[0][:16, :16]], [teacher[0]])
    with pytest.raises(TmpbenchError, match="no image pairs were scored"):
        TeacherPSNR().compute()


def test_lpips_unavailable_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    m = TeacherLPIPS()
    ok, reason = m.available()
    assert not ok and "\n" not in reason
    assert f"put alexnet-owt-7be5be79.pth at {tmp_path}/torch/hub/checkpoints/alexnet-owt-7be5be79.pth" in reason
    assert m.identity()["weights_sha256"] is None
    pruned, teacher = _pair(3)
    with pytest.raises(OfflineError, match="LPIPS \\(alex\\) backbone weights not found offline"):
        m.update(pruned, teacher)
    with pytest.raises(TmpbenchError, match="unknown LPIPS backbone 'resnet'"):
        TeacherLPIPS(net="resnet")


@pytest.mark.weights
def test_lpips_with_local_weights():
    m = TeacherLPIPS()
    ok, reason = m.available()
    if not ok:
        pytest.skip(reason)
    pruned, teacher = _pair(30, size=64)
    m.update(teacher, teacher)
    assert float(m.compute()) == pytest.approx(0.0, abs=1e-6)
    far = TeacherLPIPS()
    far.update(pruned, teacher)
    assert float(far.compute()) > 0.0
    assert lpips_backbone_path().is_file()
