"""The ShapesWorld domain feature extractor: a small CNN whose penultimate layer feeds FID/KID.

Inception features know nothing about six flat colours on black; FID on them barely moves when a
generator draws the wrong shape. This CNN is trained by project code on ShapesWorld renders to
classify every cell of the 2x2 grid as *empty* or one of 3 shapes x 6 colours (19 classes per
cell), so its penultimate features encode exactly what the suite asks for: which objects, which
colours, where. Training is deterministic and takes about a minute on one CPU core::

    nice -n 10 python -m tmpbench.metrics.backbones.shapes_net --out tmpbench/assets/shapes-features

writes ``model.safetensors`` (weights, < 300 kB), ``config.json`` (architecture, training config,
held-out accuracy) and ``model.safetensors.sha256``. The FID mode ``shapes`` pins that checksum
(:data:`tmpbench.metrics.features.SHAPES_FEATURES_SHA256`), so a retrained file is never mixed
silently with statistics computed from the old one.

The features are the output of the penultimate linear layer *before* its ReLU (continuous, so
their covariance is full-rank), standardised per dimension with the mean and std measured on
held-out renders after training, so they are O(1) like Inception's and KID's cubic kernel stays
well scaled.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tmpbench.provenance import sha256_file
from tmpbench.shapes.world import COLORS, SHAPES, Scene, ShapeObject, render

#: Class index 0 is an empty cell; then (shape, colour) pairs in SHAPES x COLORS order.
CELL_CLASSES: tuple[str, ...] = ("empty",) + tuple(f"{c} {s}" for s in SHAPES for c in COLORS)
INPUT_SIZE = 32
GRID = 2


@dataclass(frozen=True)
class ShapesFeatureConfig:
    """Architecture of :class:`ShapesFeatureNet` (stored in ``config.json`` and the safetensors header)."""

    width: int = 32
    feature_dim: int = 64
    grid: int = GRID
    input_size: int = INPUT_SIZE
    n_classes: int = len(CELL_CLASSES)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that shapes the trained weights; recorded next to them."""

    seed: int = 0
    n_train: int = 16_000
    n_holdout: int = 2_000
    epochs: int = 4
    batch_size: int = 128
    lr: float = 2e-3
    empty_prob: float = 0.35
    hires_prob: float = 0.5  # share of images rendered at 64 px and box-downsampled to 32 px
    max_noise: float = 0.08  # Gaussian pixel noise, sigma ~ U(0, max_noise) on [0, 1] images
    threads: int = 1


class ShapesFeatureNet(nn.Module):
    """Four 3x3 convolutions (32 -> 4 px), a 64-d feature layer and a per-cell classification head.

    ``forward`` returns logits ``(N, grid*grid, n_classes)``; :meth:`features` returns the
    ``(N, feature_dim)`` penultimate activations used by FID. Inputs are ``(N, 3, 32, 32)`` floats
    in ``[0, 255]``.
    """

    def __init__(self, cfg: ShapesFeatureConfig = ShapesFeatureConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.trunk = nn.Sequential(
            nn.Conv2d(3, w // 2, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(w // 2, w, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(w, w, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(w, w, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        spatial = cfg.input_size // 8
        self.feature = nn.Linear(w * spatial * spatial, cfg.feature_dim)
        self.head = nn.Linear(cfg.feature_dim, cfg.grid * cfg.grid * cfg.n_classes)

        # per-dimension standardisation measured on held-out renders after training, so features
        # are O(1) like Inception's and KID's cubic kernel (x.y/d + 1)^3 stays well scaled
        self.register_buffer("feature_mean", torch.zeros(cfg.feature_dim))
        self.register_buffer("feature_std", torch.ones(cfg.feature_dim))

    def raw_features(self, images: torch.Tensor) -> torch.Tensor:
        size = self.cfg.input_size
        if images.ndim != 4 or images.shape[1:] != (3, size, size):
            raise ValueError(f"ShapesFeatureNet expects (N, 3, {size}, {size}) images, got {tuple(images.shape)}")
        x = images.float() / 127.5 - 1.0
        return self.feature(self.trunk(x))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Standardised penultimate features ``(N, feature_dim)`` (pre-ReLU) used by FID/KID."""
        return (self.raw_features(images) - self.feature_mean) / self.feature_std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.head(torch.relu(self.raw_features(images)))
        return logits.view(images.shape[0], self.cfg.grid * self.cfg.grid, self.cfg.n_classes)


# ------------------------------------------------------------------------------------------------
# data
def cell_labels(scene: Scene) -> np.ndarray:
    """Per-cell class indices (row-major) of a 2x2 scene; 0 means empty."""
    labels = np.zeros(scene.grid * scene.grid, dtype=np.int64)
    for o in scene.objects:
        labels[o.row * scene.grid + o.col] = CELL_CLASSES.index(f"{o.color} {o.shape}")
    return labels


def random_scene(rng: np.random.Generator, empty_prob: float, grid: int = GRID) -> Scene:
    """Each cell independently empty (``empty_prob``) or holding a uniformly drawn shape and colour."""
    objects = []
    colours = list(COLORS)
    for r in range(grid):
        for c in range(grid):
            if rng.random() < empty_prob:
                continue
            objects.append(ShapeObject(SHAPES[rng.integers(len(SHAPES))], colours[rng.integers(len(colours))], r, c))
    return Scene(tuple(objects), grid=grid)


def box_downsample(img: np.ndarray, size: int) -> np.ndarray:
    """Average-pool an ``(H, W, 3)`` image to ``size`` x ``size`` (H must be a multiple of size); float32."""
    h = img.shape[0]
    if h % size:
        raise ValueError(f"cannot box-downsample {h} px to {size} px exactly")
    k = h // size
    return img.reshape(size, k, size, k, 3).astype(np.float32).mean(axis=(1, 3))


def make_dataset(n: int, rng: np.random.Generator, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` renders as ``(N, 3, 32, 32)`` float32 in [0, 255] and their ``(N, 4)`` cell labels."""
    images = np.empty((n, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32)
    labels = np.empty((n, GRID * GRID), dtype=np.int64)
    for i in range(n):
        scene = random_scene(rng, cfg.empty_prob)
        if rng.random() < cfg.hires_prob:
            images[i] = box_downsample(render(scene, 2 * INPUT_SIZE), INPUT_SIZE)
        else:
            images[i] = render(scene, INPUT_SIZE)
        labels[i] = cell_labels(scene)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)


def _augment(x: torch.Tensor, gen: torch.Generator, max_noise: float) -> torch.Tensor:
    sigma = torch.rand(x.shape[0], 1, 1, 1, generator=gen) * max_noise * 255.0
    return (x + sigma * torch.randn(x.shape, generator=gen)).clamp(0.0, 255.0)


@torch.no_grad()
def cell_accuracy(model: ShapesFeatureNet, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of cells classified correctly."""
    model.eval()
    pred = torch.cat([model(images[i : i + 512]).argmax(-1) for i in range(0, len(images), 512)])
    return float((pred == labels).float().mean())


def train(cfg: TrainConfig = TrainConfig(), arch: ShapesFeatureConfig = ShapesFeatureConfig(), log=print) -> tuple[ShapesFeatureNet, dict]:
    """Train the extractor deterministically; returns the model and its evaluation numbers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, arch, log)
    finally:
        torch.set_num_threads(threads)


def _train(cfg: TrainConfig, arch: ShapesFeatureConfig, log) -> tuple[ShapesFeatureNet, dict]:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    x_train, y_train = make_dataset(cfg.n_train, rng, cfg)
    x_hold, y_hold = make_dataset(cfg.n_holdout, rng, cfg)
    log(f"rendered {cfg.n_train} + {cfg.n_holdout} scenes in {time.perf_counter() - t0:.1f}s")
    model = ShapesFeatureNet(arch)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps_per_epoch = cfg.n_train // cfg.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    last_loss = float("nan")
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(cfg.n_train, generator=gen)
        for s in range(steps_per_epoch):
            idx = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            x = _augment(x_train[idx], gen, cfg.max_noise)
            logits = model(x)
            loss = loss_fn(logits.reshape(-1, arch.n_classes), y_train[idx].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            last_loss = loss.item()
        log(f"epoch {epoch + 1}/{cfg.epochs}: loss {last_loss:.4f}, {time.perf_counter() - t0:.1f}s")
    model.eval()
    with torch.no_grad():
        raw = torch.cat([model.raw_features(x_hold[i : i + 512]) for i in range(0, len(x_hold), 512)])
        model.feature_mean.copy_(raw.mean(0))
        model.feature_std.copy_(raw.std(0).clamp_min(1e-6))
    noisy = _augment(x_hold, torch.Generator().manual_seed(cfg.seed + 1), cfg.max_noise)
    evaluation = {
        "final_train_loss": last_loss,
        "holdout_cell_accuracy_clean": cell_accuracy(model, x_hold, y_hold),
        "holdout_cell_accuracy_noisy": cell_accuracy(model, noisy, y_hold),
        "train_seconds": round(time.perf_counter() - t0, 1),
    }
    log(json.dumps(evaluation))
    model.eval()
    return model, evaluation


# ------------------------------------------------------------------------------------------------
# saving / loading
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def save(model: ShapesFeatureNet, out: Path, train_cfg: TrainConfig, evaluation: dict) -> str:
    """Write weights, config and checksum to ``out``; returns the weights' sha256."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    arch = asdict(model.cfg)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_NAME), metadata={"architecture": json.dumps(arch, sort_keys=True)})
    digest = sha256_file(out / WEIGHTS_NAME)
    config = {
        "architecture": arch,
        "cell_classes": list(CELL_CLASSES),
        "train": asdict(train_cfg),
        "evaluation": evaluation,
        "torch_version": torch.__version__,
        "weights": WEIGHTS_NAME,
        "sha256": digest,
        "command": "python -m tmpbench.metrics.backbones.shapes_net --out tmpbench/assets/shapes-features",
    }
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (out / (WEIGHTS_NAME + ".sha256")).write_text(f"{digest}  {WEIGHTS_NAME}\n")
    return digest


def load(weights_path: Path) -> ShapesFeatureNet:
    """Load a saved extractor (architecture read from the safetensors header)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(weights_path), framework="pt") as f:
        arch = json.loads((f.metadata() or {})["architecture"])
    model = ShapesFeatureNet(ShapesFeatureConfig(**arch))
    model.load_state_dict(load_file(str(weights_path)))
    model.eval()
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "assets" / "shapes-features")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--n-train", type=int, default=TrainConfig.n_train)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    args = parser.parse_args(argv)
    cfg = TrainConfig(seed=args.seed, epochs=args.epochs, n_train=args.n_train)
    model, evaluation = train(cfg)
    digest = save(model, args.out, cfg, evaluation)
    print(f"wrote {args.out / WEIGHTS_NAME} sha256 {digest}")


if __name__ == "__main__":
    main()
