"""FID and KID on features of a named mode (see :mod:`tmpbench.metrics.features`).

The maths is in three pure functions that tests compare with the reference libraries:

* :func:`feature_statistics` -- mean and unbiased covariance, as clean-fid computes them
  (``np.mean(axis=0)``, ``np.cov(rowvar=False)``);
* :func:`frechet_distance` -- ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``; the trace of
  the matrix square root is taken as ``sum(sqrt(eig(S1^(1/2) S2 S1^(1/2))))``, a symmetric PSD matrix
  with the same eigenvalues as ``S1 S2``, so no complex parts appear; eigenvalues below numpy's
  rank tolerance count as zero (singular covariances from N < D samples). Equals clean-fid's
  ``frechet_distance`` (scipy ``sqrtm``) to ~1e-12 relative on well-conditioned features;
* :func:`kernel_distance` -- torchmetrics' KID: per subset, the unbiased MMD^2 of the cubic polynomial
  kernel ``k(x, y) = (x.y / d + 1)^3``; mean and population std over ``subsets`` subsets of
  ``subset_size`` rows drawn without replacement, real then fake per subset, from a
  ``torch.Generator`` seeded with ``seed`` (the same draws torchmetrics makes after
  ``torch.manual_seed(seed)``).

:class:`FrechetDistance` and :class:`KernelDistance` are torchmetrics metrics
(``update(images, real=...)`` or ``update(features=..., real=...)``). :func:`folder_features` reads a
folder (flat PNGs or GenEval layout) and caches its features keyed by every setting that shaped them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from tmpbench.errors import DataFormatError, TmpbenchError
from tmpbench.metrics.features import FeatureExtractor, build_extractor, get_mode, mode_available, resolve_weights
from tmpbench.provenance import library_version, sha256_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


# ------------------------------------------------------------------------------------------------
# pure maths
def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, sigma)`` of an ``(N, D)`` feature matrix in float64 (unbiased covariance); needs N >= 2."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need an (N, D) feature matrix with N >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _rank_clip(eig: np.ndarray) -> np.ndarray:
    """Zero eigenvalues below numpy's matrix-rank tolerance (``max * dim * eps``) before a square root.

    A covariance from fewer samples than dimensions is singular; its null eigenvalues come out of
    ``eigh`` as +-1e-16 * max, and their square roots (1e-8 * sqrt(max) each) would add up to a
    visible error. Eigenvalues above the tolerance are untouched.
    """
    tol = max(float(eig.max(initial=0.0)), 0.0) * eig.size * np.finfo(np.float64).eps
    return np.where(eig > tol, eig, 0.0)


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(_rank_clip(w))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    >>> round(frechet_distance(np.zeros(2), np.eye(2), np.ones(2), np.eye(2)), 6)
    2.0
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    root1 = _psd_sqrt(s1)
    inner = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_covmean = np.sqrt(_rank_clip(eig)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def polynomial_mmd(x: Tensor, y: Tensor, degree: int = 3, gamma: float | None = None, coef: float = 1.0) -> Tensor:
    """Unbiased MMD^2 between rows of ``x`` and ``y`` (same count m) under ``(gamma x.y + coef)^degree``."""
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise ValueError(f"polynomial_mmd needs two equal subsets of >= 2 rows, got {x.shape[0]} and {y.shape[0]}")
    g = 1.0 / x.shape[1] if gamma is None else gamma
    k_xx = (x @ x.T * g + coef) ** degree
    k_yy = (y @ y.T * g + coef) ** degree
    k_xy = (x @ y.T * g + coef) ** degree
    off_diag = k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()
    return off_diag / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m)


def kernel_distance(
    real,
    fake,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """KID ``(mean, std)`` over ``subsets`` random subsets (see the module docstring for the scheme)."""
    real = torch.as_tensor(np.asarray(real, dtype=np.float64))
    fake = torch.as_tensor(np.asarray(fake, dtype=np.float64))
    for name, f in (("real", real), ("fake", fake)):
        if f.shape[0] < subset_size:
            raise ValueError(f"KID subset_size {subset_size} exceeds the {f.shape[0]} {name} samples; pass subset_size <= {f.shape[0]}")
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"KID needs subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    gen = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        x = real[torch.randperm(real.shape[0], generator=gen)[:subset_size]]
        y = fake[torch.randperm(fake.shape[0], generator=gen)[:subset_size]]
        scores.append(polynomial_mmd(x, y, degree, gamma, coef))
    s = torch.stack(scores)
    return float(s.mean()), float(s.std(unbiased=False))


#: What a KID number means, for a result's ``details`` and ``tmpbench fid``'s output.
KID_NOTE = (
    "KID is the unbiased estimate of MMD^2 under the cubic kernel (x.y/d + 1)^3 (torchmetrics, clean-fid): "
    "within-set sums leave out k(x_i, x_i), so its expectation is 0 for two sets from one distribution and "
    "one estimate can be negative (a folder against itself is negative: the cross term keeps the identical "
    "pairs the within-set terms drop); read a negative KID as 0 within its +-"
)


def kid_subset_plan(n_real: int, n_fake: int, subsets: int, max_subset: int = 1000) -> tuple[int, int, str | None]:
    """``(subset_size, subsets, note)`` for KID on ``n_real`` and ``n_fake`` samples; one line on bad input.

    The subset size is ``min(n_real, n_fake, max_subset)``. When it equals both counts every subset is
    the whole of both sets, so repeated subsets are identical and their std (~1e-16) means nothing:
    the plan adapts to one subset and ``note`` says so (the caller reports no +-).
    """
    if subsets < 1:
        raise TmpbenchError(f"--kid-subsets {subsets} must be at least 1")
    if min(n_real, n_fake) < 2:
        raise TmpbenchError(f"KID needs at least 2 images per side, got {n_real} and {n_fake}; add images")
    size = min(n_real, n_fake, max_subset)
    if size == n_real == n_fake:
        note = f"one subset: the subset size {size} equals both set sizes, so every subset would be identical"
        return size, 1, note + " and no spread is reported"
    return size, subsets, None


# ------------------------------------------------------------------------------------------------
# metrics
class _FeatureMetric(Metric):
    """Shared mode handling: lazy extractor, ``available()``, ``identity()`` and input checks."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    name = "features"

    def __init__(self, mode: str = "shapes", weights: str | Path | None = None, device: str = "cpu", **kwargs) -> None:
        super().__init__(**kwargs)
        self.mode = get_mode(mode)  # unknown mode: one line with "did you mean", before any work
        self.weights = weights
        self.extractor_device = device
        self._extractor: FeatureExtractor | None = None

    def available(self) -> tuple[bool, str]:
        return mode_available(self.mode, self.weights)

    @property
    def extractor(self) -> FeatureExtractor:
        if self._extractor is None:
            self._extractor = build_extractor(self.mode, self.weights, self.extractor_device)
        return self._extractor

    def identity(self) -> dict:
        ident = {
            "name": self.name,
            "mode": self.mode.name,
            "library": self.mode.library,
            "library_version": library_version(self.mode.library),
            "tmpbench_maths": "tmpbench.metrics.fid",
            "settings": self.mode.settings(),
            "weights_path": None,
            "weights_sha256": None,
        }
        ok, reason = self.available()
        if ok:
            path = resolve_weights(self.mode, self.weights)
            ident.update(weights_path=str(path), weights_sha256=sha256_file(path))
        else:
            ident["unavailable"] = reason
        return ident

    def _features(self, images, features) -> Tensor:
        if (images is None) == (features is None):
            raise TmpbenchError(f"{self.name}.update takes images or features=, exactly one of them")
        if images is not None:
            return self.extractor(images)
        f = torch.as_tensor(features).to(torch.float64)
        if f.ndim != 2 or f.shape[1] != self.mode.feature_dim:
            raise TmpbenchError(
                f"{self.name}: features must be (N, {self.mode.feature_dim}) for mode {self.mode.name!r}, got {tuple(f.shape)}"
            )
        return f


class FrechetDistance(_FeatureMetric):
    """FID in a feature mode. States: per side a feature sum, an outer-product sum and a count.

    >>> fid = FrechetDistance(mode="shapes")                  # doctest: +SKIP
    >>> fid.update(real_images, real=True); fid.update(fake_images, real=False)   # doctest: +SKIP
    >>> float(fid.compute())                                  # doctest: +SKIP
    """

    name = "fid"

    def __init__(self, mode: str = "shapes", weights: str | Path | None = None, device: str = "cpu", **kwargs) -> None:
        super().__init__(mode, weights, device, **kwargs)
        d = self.mode.feature_dim
        for side in ("real", "fake"):
            self.add_state(f"{side}_sum", torch.zeros(d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_outer", torch.zeros(d, d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_n", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, images=None, real: bool = True, *, features=None) -> None:
        f = self._features(images, features)
        side = "real" if real else "fake"
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + f.sum(0))
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + f.T @ f)
        setattr(self, f"{side}_n", getattr(self, f"{side}_n") + f.shape[0])

    def statistics(self, real: bool) -> tuple[np.ndarray, np.ndarray]:
        side = "real" if real else "fake"
        n = int(getattr(self, f"{side}_n"))
        if n < 2:
            raise TmpbenchError(f"fid: need at least 2 {side} images, got {n}")
        mu = getattr(self, f"{side}_sum") / n
        cov = (getattr(self, f"{side}_outer") - n * torch.outer(mu, mu)) / (n - 1)
        return mu.cpu().numpy(), cov.cpu().numpy()

    def compute(self) -> Tensor:
        return torch.tensor(frechet_distance(*self.statistics(True), *self.statistics(False)), dtype=torch.float64)


class KernelDistance(_FeatureMetric):
    """KID in a feature mode; ``compute() -> (mean, std)``. Keeps every feature (list states)."""

    name = "kid"

    def __init__(
        self,
        mode: str = "shapes",
        weights: str | Path | None = None,
        device: str = "cpu",
        subsets: int = 100,
        subset_size: int = 1000,
        seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(mode, weights, device, **kwargs)
        self.subsets, self.subset_size, self.seed = subsets, subset_size, seed
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")

    def update(self, images=None, real: bool = True, *, features=None) -> None:
        (self.real_features if real else self.fake_features).append(self._features(images, features))

    def compute(self) -> tuple[Tensor, Tensor]:
        if not self.real_features or not self.fake_features:
            raise TmpbenchError("kid: update with both real and fake images before compute()")
        mean, std = kernel_distance(
            dim_zero_cat(self.real_features).numpy(),
            dim_zero_cat(self.fake_features).numpy(),
            self.subsets,
            self.subset_size,
            seed=self.seed,
        )
        return torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)

    def identity(self) -> dict:
        return {**super().identity(), "subsets": self.subsets, "subset_size": self.subset_size, "seed": self.seed}


# ------------------------------------------------------------------------------------------------
# folders
def list_images(root: str | Path) -> list[Path]:
    """Image files of a flat folder (``*.png|jpg|jpeg|webp``) or of a GenEval-layout folder (all samples)."""
    from tmpbench.suites.layout import read_folder

    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(f"image folder {root} does not exist")
    flat = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and ".tmp" not in p.name)
    if flat:
        return flat
    if any(p.is_dir() and p.name.isdigit() for p in root.iterdir()):
        return [s for item in read_folder(root) for s in item.samples]
    raise DataFormatError(f"{root} holds no images: expected *.png files or GenEval layout (<index:05d>/samples/*.png)")


def load_images(paths: list[Path]) -> list[np.ndarray]:
    from tmpbench.suites.layout import load_image

    return [load_image(p) for p in paths]


def default_cache_dir() -> Path:
    env = os.environ.get("TMPBENCH_CACHE_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tmpbench"
    return base / "features"


def features_cache_key(paths: list[Path], extractor: FeatureExtractor) -> str:
    """sha256 over the images' bytes and every setting that shaped the features."""
    h = hashlib.sha256()
    h.update(json.dumps({**extractor.identity(), "device": extractor.device}, sort_keys=True).encode())
    for p in paths:
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def folder_features(
    root: str | Path,
    mode: str = "shapes",
    weights: str | Path | None = None,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    batch_size: int = 64,
) -> np.ndarray:
    """``(N, D)`` features of every image under ``root``; cached under ``cache_dir`` by content + mode."""
    paths = list_images(root)
    extractor = build_extractor(mode, weights, device)
    cache_file = None
    if use_cache:
        cache_file = Path(cache_dir or default_cache_dir()) / f"{features_cache_key(paths, extractor)}.npz"
        if cache_file.is_file():
            with np.load(cache_file) as data:
                return data["features"]
    feats = np.concatenate(
        [extractor(load_images(paths[i : i + batch_size])).numpy() for i in range(0, len(paths), batch_size)]
    )
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npz")
        np.savez(tmp, features=feats, identity=json.dumps(extractor.identity(), sort_keys=True))
        tmp.replace(cache_file)
    return feats


def fid_between_folders(
    dir1: str | Path,
    dir2: str | Path,
    mode: str = "shapes",
    weights: str | Path | None = None,
    device: str = "cpu",
    kid_subsets: int = 100,
    kid_seed: int = 0,
    use_cache: bool = True,
    cache_dir: str | Path | None = None,
) -> dict:
    """FID and KID between two image folders; ``dir1`` is the reference ("real") side.

    KID uses ``subset_size = min(n1, n2, 1000)`` (recorded in the result); see :func:`kid_subset_plan`
    for equal sets smaller than 1000 (one subset, ``kid_std`` None) and :data:`KID_NOTE` for its sign.
    """
    get_mode(mode)
    f1 = folder_features(dir1, mode, weights, device, cache_dir, use_cache)
    f2 = folder_features(dir2, mode, weights, device, cache_dir, use_cache)
    subset, kid_subsets, kid_note = kid_subset_plan(len(f1), len(f2), kid_subsets)
    kid_mean, kid_std = kernel_distance(f1, f2, kid_subsets, subset, seed=kid_seed)
    ex = build_extractor(mode, weights, device)
    return {
        "fid": frechet_distance(*feature_statistics(f1), *feature_statistics(f2)),
        "kid_mean": kid_mean,
        "kid_std": None if kid_note else kid_std,
        "kid_subsets": kid_subsets,
        "kid_subset_size": subset,
        "kid_seed": kid_seed,
        "kid_subset_note": kid_note,
        "kid_note": KID_NOTE,
        "n1": len(f1),
        "n2": len(f2),
        "dir1": str(dir1),
        "dir2": str(dir2),
        "identity": ex.identity(),
    }
