"""Training the ShapesWorld reference models (``tiny-dit``, ``tiny-moe``) by flow matching.

Recipe (recorded in the exported model's ``tmpbench.json``):

* data: ShapesWorld drawn on the fly from the training seed, never from the suites' seeds;
  T2I captions drawn over GenEval tags by ``tag_schedule`` (colour tags only for the first 150
  steps, then all six with the two colour tags weighted 2x), edits uniform over the five edit types.
  Why: on the uniform mix a model never learns to read colour words (session-1 model: "colors"
  0.05 and colour words moved its output 40x less than shape words), because colour is decided at
  the highest noise levels, where the noisy image says nothing and the loss gain from the caption
  is small; a colour-only warm start learns it in ~150 steps and the 2x weight keeps it;
* objective: rectified flow as Z-Image is trained, ``x_s = (1 - s) x0 + s eps`` with s drawn
  by ``sigma_schedule`` (logit-normal, uniform or an even mix) then shifted by ``sigma_shift`` = 3,
  ``s -> 3s / (1 + 2s)``, the shift the sampler uses (Z-Image-Turbo's scheduler ships shift 3), so
  training and sampling both spend more effort at high noise; the transformer sees ``t = 1 - s`` and predicts ``x0 - eps`` (what
  ZImagePipeline's sampler expects); captions dropped 10% of the time for classifier-free guidance;
* T2I batches run the transformer in basic mode (the ZImagePipeline path), edit batches in omni
  mode with the source image as clean tokens (the path ``edit_in_sequence`` samples);
* the text encoder is trained jointly; AdamW, warm-up then cosine decay; EMA weights are exported;
* checkpoints every ``ckpt_every`` steps (atomic replace) make the run resumable bit for bit.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from tmpbench.catalog import MODELS
from tmpbench.errors import TmpbenchError
from tmpbench.models.reference import tiny_zimage as tz
from tmpbench.shapes.edits import EDIT_TYPES, make_edit
from tmpbench.shapes.grammar import TAGS, enumerate_prompts, sample_scene
from tmpbench.shapes.world import render


@dataclass
class TrainConfig:
    """Everything that shapes a reference model; saved with it."""

    model: str = "tiny-dit"
    arch: tz.TinyZImageConfig = field(default_factory=tz.TinyZImageConfig)
    steps: int = 1500
    t2i_batch: int = 32
    edit_batch: int = 12
    lr: float = 1e-3
    warmup: int = 200
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    ema_decay: float = 0.999
    cfg_dropout: float = 0.1
    aux_loss_weight: float = 0.01  # tiny-moe load balancing
    # "joint": train the tiny Qwen3 text encoder with the transformer; "frozen": keep its seeded
    # init fixed, as Z-Image keeps its pretrained Qwen3 frozen (see module docstring)
    text_encoder: str = "joint"
    seed: int = 1234
    # [start_step, kind] pairs: the noise-level distribution from each step on (see _sample_sigma)
    sigma_schedule: list = field(default_factory=lambda: [[0, "mixed"]])
    # noise levels drawn by sigma_schedule are shifted as the sampler shifts them,
    # s -> shift*s / (1 + (shift-1)*s), so training spends its effort where sampling does
    sigma_shift: float = 3.0
    # [start_step, {tag: weight}] pairs: how T2I captions are drawn over GenEval tags from each step
    # on ({} = uniform). A colour-only warm start is what makes colour binding learnable at all:
    # trained on the uniform mix from step 0, the model learns colour as noise-decided and never
    # reads colour words (measured: 0.05 on "colors" after 1400 steps; see ShapesStream.t2i)
    tag_schedule: list = field(default_factory=lambda: [
        [0, {"colors": 1, "color_attr": 1}],
        [150, {"colors": 2, "color_attr": 2, "single_object": 1, "two_object": 1, "counting": 1, "position": 1}],
    ])
    ckpt_every: int = 100
    threads: int = 2

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        d["arch"] = tz.TinyZImageConfig(**d["arch"])
        return cls(**d)


def reference_models() -> list[str]:
    """Registered models `tmpbench train-reference` can train (their entry records an architecture)."""
    return [name for name in MODELS.names() if getattr(MODELS.get(name), "architecture", None) is not None]


def default_config(model: str) -> TrainConfig:
    """The training recipe of reference model ``model``, at the architecture its registry entry records."""
    known = reference_models()
    if model not in known:
        raise TmpbenchError(f"unknown reference model {model!r}; choose one of {', '.join(known)}")
    entry = MODELS.get(model)
    # an entry may override recipe fields (e.g. tiny-hy3 trains longer: no adaLN, the timestep is a token)
    overrides = dict((entry.extra or {}).get("train", {}))
    return TrainConfig(model=model, arch=tz.TinyZImageConfig(**entry.architecture), **overrides)


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
class ShapesStream:
    """Endless, seeded stream of T2I and edit training examples."""

    def __init__(self, seed: int, grid: int, size: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.grid, self.size = grid, size
        self.pools = {tag: enumerate_prompts(tag, grid) for tag in TAGS}

    def t2i(self, n: int, weights: dict | None = None) -> tuple[list[str], np.ndarray]:
        """``n`` captions and renders; tags uniform, or drawn by ``weights`` ({tag: weight}, missing = 0)."""
        prompts, images = [], []
        p = None
        if weights:
            unknown = sorted(set(weights) - set(TAGS))
            if unknown:
                raise TmpbenchError(f"unknown GenEval tag {unknown[0]!r} in tag weights; tags are {', '.join(TAGS)}")
            w = np.array([float(weights.get(t, 0.0)) for t in TAGS])
            if (w < 0).any() or w.sum() <= 0:
                raise TmpbenchError(f"tag weights must be >= 0 with a positive sum, got {weights}")
            p = w / w.sum()
        for _ in range(n):
            tag = TAGS[int(self.rng.integers(len(TAGS)))] if p is None else TAGS[int(self.rng.choice(len(TAGS), p=p))]
            pool = self.pools[tag]
            rec = pool[int(self.rng.integers(len(pool)))]
            prompts.append(rec["prompt"])
            images.append(render(sample_scene(rec, self.rng, self.grid), self.size))
        return prompts, np.stack(images)

    def edits(self, n: int) -> tuple[list[str], np.ndarray, np.ndarray]:
        instr, src, tgt = [], [], []
        for _ in range(n):
            case = make_edit(EDIT_TYPES[int(self.rng.integers(len(EDIT_TYPES)))], self.rng, self.grid)
            instr.append(case.instruction)
            src.append(render(case.source, self.size))
            tgt.append(render(case.target, self.size))
        return instr, np.stack(src), np.stack(tgt)


# --------------------------------------------------------------------------------------------
# loss
# --------------------------------------------------------------------------------------------
def _sample_sigma(n: int, kind: str, gen: torch.Generator) -> torch.Tensor:
    """Noise levels: ``logit_normal`` (SD3), ``uniform``, or ``mixed`` (half each, per sample).

    Logit-normal rarely visits the low-noise end, which the last sampling steps depend on; a tiny
    model trained on it alone leaves visible residual noise, hence ``mixed``.
    """
    ln = torch.sigmoid(torch.randn(n, generator=gen))
    if kind == "logit_normal":
        return ln
    un = torch.rand(n, generator=gen)
    if kind == "uniform":
        return un
    if kind == "mixed":
        return torch.where(torch.rand(n, generator=gen) < 0.5, un, ln)
    raise TmpbenchError(f"unknown noise-level sampling {kind!r}; use logit_normal, uniform or mixed")


def tag_weights_at(step: int, schedule: list) -> dict:
    weights = schedule[0][1]
    for start, w in schedule:
        if step >= start:
            weights = w
    return dict(weights or {})


def sigma_kind_at(step: int, schedule: list) -> str:
    kind = schedule[0][1]
    for start, k in schedule:
        if step >= start:
            kind = k
    return kind


def _noisy(
    x0: torch.Tensor, gen: torch.Generator, kind: str = "logit_normal", shift: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    s = _sample_sigma(x0.shape[0], kind, gen)
    if shift != 1.0:
        s = shift * s / (1 + (shift - 1) * s)
    eps = torch.randn(x0.shape, generator=gen)
    xs = (1 - s.view(-1, 1, 1, 1)) * x0 + s.view(-1, 1, 1, 1) * eps
    return xs, 1 - s, x0 - eps


def _drop(texts: list[str], p: float, gen: torch.Generator) -> list[str]:
    keep = torch.rand(len(texts), generator=gen) >= p
    return [t if k else "" for t, k in zip(texts, keep.tolist())]


def flow_loss_t2i(
    pipe, prompts: list[str], images: np.ndarray, gen: torch.Generator, cfg_dropout: float,
    sigma_kind: str = "logit_normal", shift: float = 1.0,
) -> torch.Tensor:
    x0 = tz.images_to_latents(images, pipe.vae.config.factor)
    xs, t, target = _noisy(x0, gen, sigma_kind, shift)
    caps = tz.encode_prompts(pipe, _drop(prompts, cfg_dropout, gen))
    out = pipe.transformer([x.unsqueeze(1) for x in xs], t, caps, return_dict=False)[0]
    pred = torch.stack([o.squeeze(1) for o in out])
    return torch.nn.functional.mse_loss(pred, target)


def flow_loss_edit(
    pipe, instr: list[str], src: np.ndarray, tgt: np.ndarray, gen: torch.Generator, cfg_dropout: float,
    sigma_kind: str = "logit_normal", shift: float = 1.0,
) -> torch.Tensor:
    factor = pipe.vae.config.factor
    cond = tz.images_to_latents(src, factor)
    x0 = tz.images_to_latents(tgt, factor)
    xs, t, target = _noisy(x0, gen, sigma_kind, shift)
    caps = tz.encode_edit_segments(pipe, _drop(instr, cfg_dropout, gen))
    x = [[cond[j].unsqueeze(1), xs[j].unsqueeze(1)] for j in range(len(instr))]
    out = pipe.transformer(
        x, t, caps, siglip_feats=[None] * len(instr), image_noise_mask=[[0, 1]] * len(instr), return_dict=False
    )[0]
    pred = torch.stack([o.squeeze(1) for o in out])
    return torch.nn.functional.mse_loss(pred, target)


def _aux_loss(transformer) -> torch.Tensor | float:
    total = 0.0
    for m in transformer.modules():
        aux = getattr(m, "aux_loss", None)
        if isinstance(aux, torch.Tensor) and aux.requires_grad:
            total = total + aux
    return total


# --------------------------------------------------------------------------------------------
# training loop
# --------------------------------------------------------------------------------------------
def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def _trainable(pipe, cfg: TrainConfig) -> list[torch.nn.Parameter]:
    if cfg.text_encoder not in ("joint", "frozen"):
        raise TmpbenchError(f"unknown text_encoder mode {cfg.text_encoder!r}; use joint or frozen")
    modules = [pipe.transformer] + ([pipe.text_encoder] if cfg.text_encoder == "joint" else [])
    if cfg.text_encoder == "frozen":
        pipe.text_encoder.requires_grad_(False)
    return [p for m in modules for p in m.parameters() if p.requires_grad]


def train(cfg: TrainConfig, out_dir: str | Path, max_minutes: float | None = None, log=print) -> Path:
    """Train (or resume) in ``out_dir``; returns the checkpoint path. Stops at ``cfg.steps`` or after ``max_minutes``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    ckpt_path = out_dir / "checkpoint.pt"
    pipe = tz.make_pipeline(tz.build_components(cfg.arch))
    params = _trainable(pipe, cfg)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    ema = [p.detach().clone() for p in params]
    stream = ShapesStream(cfg.seed, cfg.arch.grid, cfg.arch.size)
    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if state["config"] != asdict(cfg) | {"steps": state["config"]["steps"]}:
            log(f"note: resuming {ckpt_path} with changed settings")
        for p, v in zip(params, state["params"]):
            p.data.copy_(v)
        for e, v in zip(ema, state["ema"]):
            e.copy_(v)
        opt.load_state_dict(state["opt"])
        stream.rng.bit_generator.state = state["np_rng"]
        gen.set_state(state["torch_rng"])
        step = state["step"]
        log(f"resumed from step {step}")
    (out_dir / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    t_start = time.time()
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.model}", dynamic_ncols=True)
    losses: list[float] = []
    while step < cfg.steps:
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, cfg)
        kind = sigma_kind_at(step, cfg.sigma_schedule)
        prompts, images = stream.t2i(cfg.t2i_batch, tag_weights_at(step, cfg.tag_schedule))
        loss = flow_loss_t2i(pipe, prompts, images, gen, cfg.cfg_dropout, kind, cfg.sigma_shift)
        if cfg.edit_batch:
            instr, src, tgt = stream.edits(cfg.edit_batch)
            edit_loss = flow_loss_edit(pipe, instr, src, tgt, gen, cfg.cfg_dropout, kind, cfg.sigma_shift)
            loss = loss + edit_loss * (cfg.edit_batch / cfg.t2i_batch)
        aux = _aux_loss(pipe.transformer)
        total = loss + cfg.aux_loss_weight * aux
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():  # EMA with warm-up, so early steps do not keep the random init alive
            decay = min(cfg.ema_decay, (1 + step) / (10 + step))
            for e, p in zip(ema, params):
                e.lerp_(p.detach(), 1 - decay)
        step += 1
        losses.append(float(loss.detach()))
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.4f}")
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            _save_ckpt(ckpt_path, cfg, params, ema, opt, stream, gen, step)
            elapsed = time.time() - t_start
            log(f"step {step} loss {np.mean(losses[-cfg.ckpt_every:]):.4f} lr {_lr_at(step, cfg):.2e} elapsed {elapsed / 60:.1f} min")
            if max_minutes is not None and elapsed > max_minutes * 60:
                break
    bar.close()
    return ckpt_path


def _save_ckpt(path: Path, cfg, params, ema, opt, stream, gen, step: int) -> None:
    state = {
        "config": asdict(cfg),
        "params": [p.detach().clone() for p in params],
        "ema": [e.clone() for e in ema],
        "opt": opt.state_dict(),
        "np_rng": stream.rng.bit_generator.state,
        "torch_rng": gen.get_state(),
        "step": step,
        "wall_time_s": None,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint_pipeline(ckpt_path: str | Path, use_ema: bool = True):
    """Rebuild the pipeline from a training checkpoint (EMA weights by default)."""
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    cfg = TrainConfig.from_dict(state["config"])
    pipe = tz.make_pipeline(tz.build_components(cfg.arch))
    for p, v in zip(_trainable(pipe, cfg), state["ema" if use_ema else "params"]):
        p.data.copy_(v)
    return pipe, cfg, state["step"]


def export(ckpt_path: str | Path, out: str | Path, extra: dict | None = None) -> Path:
    """Write the EMA weights as a tiny pipeline folder (fp16 safetensors + configs + recipe)."""
    pipe, cfg, step = load_checkpoint_pipeline(ckpt_path)
    tz.save_pipeline(pipe, out, cfg.arch, extra={"train_config": asdict(cfg), "trained_steps": step, **(extra or {})})
    return Path(out)
