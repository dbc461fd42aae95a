"""FID / KID maths against clean-fid and torchmetrics, the Metric classes, and folder features."""

import numpy as np
import pytest
import torch
from cleanfid.fid import frechet_distance as cleanfid_frechet_distance
from torchmetrics.image.kid import KernelInceptionDistance

from tmpbench.errors import DataFormatError, TmpbenchError, UnknownNameError
from tmpbench.metrics.fid import (
    FrechetDistance,
    KernelDistance,
    feature_statistics,
    fid_between_folders,
    folder_features,
    frechet_distance,
    kernel_distance,
    list_images,
    polynomial_mmd,
)

# clean-fid passes scipy's deprecated `disp` argument; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")


def _features(seed, n, d, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)  # correlated dimensions
    return rng.normal(size=(n, d)) @ mix * scale + shift


@pytest.mark.parametrize(
    "n1,n2,d,shift,scale",
    [(300, 250, 16, 0.1, 1.0), (500, 400, 64, 0.5, 1.3), (200, 200, 64, 0.0, 1.0), (1000, 800, 128, 2.0, 0.7)],
)
def test_frechet_distance_matches_cleanfid(n1, n2, d, shift, scale):
    a, b = _features(1, n1, d), _features(2, n2, d, shift, scale)
    ours = frechet_distance(*feature_statistics(a), *feature_statistics(b))
    ref = cleanfid_frechet_distance(*feature_statistics(a), *feature_statistics(b))
    assert abs(ours - ref) <= 1e-6 * abs(ref)


def test_frechet_distance_matches_cleanfid_on_shapes_features(renders):
    from tmpbench.metrics.features import build_extractor

    ex = build_extractor("shapes")
    a = ex(renders(1, 20)).numpy()
    b = ex(renders(2, 20)).numpy()
    noise = ex(np.random.default_rng(0).integers(0, 256, (120, 32, 32, 3), dtype=np.uint8)).numpy()
    for other in (b, noise):
        ours = frechet_distance(*feature_statistics(a), *feature_statistics(other))
        ref = cleanfid_frechet_distance(*feature_statistics(a), *feature_statistics(other))
        assert abs(ours - ref) <= 1e-6 * abs(ref)


def test_frechet_distance_closed_forms():
    d = 5
    # equal covariances: only the mean term remains
    assert frechet_distance(np.zeros(d), np.eye(d), np.full(d, 2.0), np.eye(d)) == pytest.approx(4.0 * d)
    # isotropic covariances a*I, b*I: d * (sqrt(a) - sqrt(b))^2
    assert frechet_distance(np.zeros(d), 4 * np.eye(d), np.zeros(d), 9 * np.eye(d)) == pytest.approx(d * 1.0)
    with pytest.raises(ValueError, match="mismatched statistics"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def _torchmetrics_kid(real, fake, subsets, subset_size, seed):
    class PassThrough(torch.nn.Module):
        def forward(self, x):
            return x

    kid = KernelInceptionDistance(feature=PassThrough(), subsets=subsets, subset_size=subset_size)
    kid.update(torch.as_tensor(real), real=True)
    kid.update(torch.as_tensor(fake), real=False)
    torch.manual_seed(seed)  # torchmetrics draws subsets from the global generator
    mean, std = kid.compute()
    return float(mean), float(std)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance`")
@pytest.mark.parametrize("subsets,subset_size,seed", [(10, 50, 0), (25, 80, 123)])
def test_kid_matches_torchmetrics_with_same_subsets(subsets, subset_size, seed):
    real, fake = _features(3, 120, 32), _features(4, 100, 32, 0.3, 1.2)
    ours = kernel_distance(real, fake, subsets, subset_size, seed=seed)
    ref = _torchmetrics_kid(real, fake, subsets, subset_size, seed)
    assert ours[0] == pytest.approx(ref[0], abs=1e-4, rel=1e-4)
    assert ours[1] == pytest.approx(ref[1], abs=1e-4, rel=1e-4)
    assert ours[0] > 0.01  # the two sets differ, so the test is not comparing zeros


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance`")
def test_kid_full_set_is_seed_free_and_matches_torchmetrics():
    # subset_size == n: every subset is the whole set, so the draw order cannot matter
    real, fake = _features(5, 60, 16), _features(6, 60, 16, 0.5)
    ours = kernel_distance(real, fake, subsets=3, subset_size=60, seed=7)
    ref = _torchmetrics_kid(real, fake, 3, 60, seed=99)
    assert ours[0] == pytest.approx(ref[0], rel=1e-9)
    assert ours[1] < 1e-9


def test_polynomial_mmd_of_a_set_with_itself_is_small_and_errors():
    x = torch.as_tensor(_features(7, 40, 8))
    assert abs(float(polynomial_mmd(x, x))) < 0.05 * float(polynomial_mmd(x, x + 1.0))
    with pytest.raises(ValueError, match="subset_size 500 exceeds the 40 real samples"):
        kernel_distance(x.numpy(), x.numpy(), subsets=2, subset_size=500)


def test_frechet_metric_accumulates_like_the_pure_function():
    a, b = _features(8, 300, 64), _features(9, 260, 64, 0.2)
    fid = FrechetDistance(mode="shapes")
    for chunk in np.array_split(a, 3):  # several updates == one big one
        fid.update(features=chunk, real=True)
    fid.update(features=b, real=False)
    ref = cleanfid_frechet_distance(*feature_statistics(a), *feature_statistics(b))
    assert float(fid.compute()) == pytest.approx(ref, rel=1e-6)
    assert set(fid._defaults) >= {"real_sum", "real_outer", "real_n", "fake_sum", "fake_outer", "fake_n"}
    assert fid.higher_is_better is False
    fid.reset()
    assert int(fid.real_n) == 0 and float(fid.real_sum.abs().sum()) == 0.0


def test_kid_metric_equals_pure_function():
    a, b = _features(10, 90, 64), _features(11, 80, 64, 0.4)
    kid = KernelDistance(mode="shapes", subsets=5, subset_size=40, seed=3)
    kid.update(features=a, real=True)
    kid.update(features=b[:30], real=False)
    kid.update(features=b[30:], real=False)
    mean, std = kid.compute()
    assert (float(mean), float(std)) == pytest.approx(kernel_distance(a, b, 5, 40, seed=3), rel=1e-12)
    assert kid.identity()["subset_size"] == 40


def test_metric_images_equal_features_path(renders):
    imgs = renders(0, 4)
    fid_a = FrechetDistance(mode="shapes")
    fid_a.update(imgs, real=True)
    fid_a.update(imgs[::-1], real=False)
    fid_b = FrechetDistance(mode="shapes")
    feats = fid_a.extractor(imgs)
    fid_b.update(features=feats, real=True)
    fid_b.update(features=feats.flip(0), real=False)
    assert float(fid_a.compute()) == pytest.approx(float(fid_b.compute()), abs=1e-9)
    assert abs(float(fid_a.compute())) < 1e-6  # same set on both sides


def test_metric_input_errors():
    fid = FrechetDistance(mode="shapes")
    with pytest.raises(TmpbenchError, match="exactly one of them"):
        fid.update(np.zeros((2, 32, 32, 3), np.uint8), real=True, features=np.zeros((2, 64)))
    with pytest.raises(TmpbenchError, match=r"features must be \(N, 64\) for mode 'shapes', got \(2, 10\)"):
        fid.update(features=np.zeros((2, 10)), real=True)
    fid.update(features=np.zeros((1, 64)), real=True)
    with pytest.raises(TmpbenchError, match="need at least 2 real images, got 1"):
        fid.compute()


def test_unknown_mode_did_you_mean():
    with pytest.raises(UnknownNameError, match="unknown feature mode 'shape'; did you mean 'shapes'"):
        FrechetDistance(mode="shape")
    with pytest.raises(UnknownNameError, match="did you mean 'inception'"):
        KernelDistance(mode="incepton")


def test_folders_flat_and_geneval_layout_give_the_same_features(tmp_path, renders, image_folder):
    imgs = renders(1, 2)
    flat = image_folder(tmp_path / "flat", imgs, "flat")
    gen = image_folder(tmp_path / "gen", imgs, "geneval")
    assert len(list_images(flat)) == len(list_images(gen)) == 12
    np.testing.assert_array_equal(
        folder_features(flat, use_cache=False), folder_features(gen, use_cache=False)
    )
    with pytest.raises(DataFormatError, match="holds no images"):
        list_images((tmp_path / "empty").mkdir() or tmp_path / "empty")
    with pytest.raises(DataFormatError, match="does not exist"):
        list_images(tmp_path / "missing")


def test_feature_cache_is_keyed_by_content(tmp_path, renders, image_folder):
    cache = tmp_path / "fcache"
    root = image_folder(tmp_path / "a", renders(1, 2), "flat")
    first = folder_features(root, cache_dir=cache)
    files = list(cache.glob("*.npz"))
    assert len(files) == 1
    np.testing.assert_array_equal(folder_features(root, cache_dir=cache), first)  # hit: no new entry
    assert list(cache.glob("*.npz")) == files
    # a changed image is a new key, never a stale hit
    image_folder(root, renders(5, 1)[:1], "flat")
    second = folder_features(root, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 2
    assert not np.array_equal(first, second)


def test_fid_between_folders_sanity(tmp_path, renders, image_folder):
    a = image_folder(tmp_path / "a", renders(1, 10), "geneval")
    b = image_folder(tmp_path / "b", renders(2, 10), "geneval")
    noise = image_folder(
        tmp_path / "n", list(np.random.default_rng(0).integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)), "flat"
    )
    same = fid_between_folders(a, a, kid_subsets=5)
    seeds = fid_between_folders(a, b, kid_subsets=5)
    far = fid_between_folders(a, noise, kid_subsets=5)
    # ~0 up to float64 rounding of the singular (60 images < 64 dims) covariance; tr(sigma) is ~50
    assert abs(same["fid"]) < 1e-5
    assert 0 < seeds["fid"] < 20 < 100 * seeds["fid"] < far["fid"]
    assert far["kid_mean"] > 100 * abs(seeds["kid_mean"])
    assert same["identity"]["weights_sha256"] == seeds["identity"]["weights_sha256"]
