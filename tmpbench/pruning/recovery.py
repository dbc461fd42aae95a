"""Recovery: knowledge distillation of a pruned denoiser from its unpruned teacher.

One recipe (:class:`tmpbench.pruning.recipes.RecoveryRecipe`) for every pruner: a fixed number of
AdamW steps at a fixed learning rate, seeded, with a tqdm progress bar. The data is made once from
the calibration items (:class:`tmpbench.pruning.recipes.CalibrationSpec`, its ``calib`` split): T2I
prompts and, when the calibration mix has an edit share and the model edits, edit items, in the
mix's proportions:

1. the captions are encoded by the generator's own pipeline (``pipe.encode_prompt``; edits: the
   caption segments the generator's own edit call passes to the denoiser);
2. the teacher (a deep copy of the ORIGINAL denoiser, frozen) samples each prompt with its seed
   through the pipeline itself, and each edit through ``generator.edit``; hooks record the states
   ``x_t`` and times ``t`` of its trajectory (an edit's clean source latents ride along), and the
   final latents ``x_0`` are kept (an edit's: the teacher's clean estimate at its last state);
3. each training batch mixes trajectory states with fresh states ``x_t = (1 - s) x_0 + s eps`` at a
   uniformly random noise level ``s`` (Z-Image's flow-matching convention, model time ``t = 1 - s``);
4. the target is the teacher's denoiser output on exactly those inputs; the loss is
   ``output_weight * MSE(student, teacher)`` plus ``feature_weight * MSE`` of the hidden state
   entering the final layer.

Supported: Z-Image-family pipelines (``pipe.transformer`` called as ``transformer(x_list, t,
cap_feats_list)``; edits in omni mode with ``image_noise_mask``), dense and MoE. HunyuanImage-3.0
recovery needs its image pipeline and a GPU cluster; asking for it raises a one-line error.

The log reports the loss before and after on a fixed batch made from ``recipe.held_out`` items of
the ``dev`` split (their own teacher trajectories), never from the training items.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from tmpbench.errors import TmpbenchError


@dataclass
class DistillData:
    """Teacher-made training material, one entry per item (a T2I prompt or an edit)."""

    captions: list[Any] = field(default_factory=list)  # per item: (L, D) features, or an edit's caption segments
    states: list[list[torch.Tensor]] = field(default_factory=list)  # per item: the teacher's own x_t, each (C, 1, H, W)
    times: list[list[float]] = field(default_factory=list)  # per item: model time t = 1 - sigma of each state
    x0: list[torch.Tensor] = field(default_factory=list)  # per item: (C, H, W) final latent of the teacher's sample
    # per item: None (T2I), or an edit's clean condition latents ("x") and per-item denoiser kwargs ("kwargs")
    conditions: list[dict | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.x0)

    def __add__(self, other: DistillData) -> DistillData:
        return DistillData(self.captions + other.captions, self.states + other.states, self.times + other.times,
                           self.x0 + other.x0, self.conditions + other.conditions)

    @property
    def n_edits(self) -> int:
        return sum(c is not None for c in self.conditions)


def _require_zimage(generator: Any) -> Any:
    pipe = getattr(generator, "pipe", None)
    if pipe is None or not hasattr(pipe, "encode_prompt") or getattr(pipe, "transformer", None) is None:
        raise TmpbenchError(
            f"recovery distillation supports Z-Image-family pipelines; {type(generator).__name__} "
            f"({getattr(generator, 'family', '?')}) has none; prune with --recover-steps 0"
        )
    return pipe


@torch.no_grad()
def teacher_data(generator: Any, teacher: torch.nn.Module, prompts: list[str], seeds: list[int], steps: int,
                 size: int, guidance: float) -> DistillData:
    """Sample every prompt with the teacher through the generator's pipeline and record its trajectory."""
    pipe = _require_zimage(generator)
    if not prompts:
        return DistillData()
    max_len = int(getattr(generator, "max_sequence_length", 512))
    teacher_pipe = type(pipe)(**{**pipe.components, "transformer": teacher})
    teacher_pipe.set_progress_bar_config(disable=True)
    n = len(prompts)
    states: list[torch.Tensor] = []
    times: list[torch.Tensor] = []

    def grab(_module: Any, args: tuple, kwargs: dict) -> None:
        x = args[0] if args else kwargs["x"]
        t = args[1] if len(args) > 1 else kwargs["t"]
        # with CFG the batch is [positive, negative]; the positive half is the trajectory
        states.append(torch.stack([xi.detach().float() for xi in x[:n]]))
        times.append(t[:n].detach().float().clone())

    handle = teacher.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        out = teacher_pipe(prompt=list(prompts), height=size, width=size, num_inference_steps=steps,
                           guidance_scale=guidance, generator=gens, max_sequence_length=max_len,
                           output_type="latent")
    finally:
        handle.remove()
    x0 = out.images.detach().float()
    captions, _ = pipe.encode_prompt(list(prompts), do_classifier_free_guidance=False, max_sequence_length=max_len)
    return DistillData(
        captions=[c.detach() for c in captions],
        states=[[s[i] for s in states] for i in range(n)],
        times=[[float(t[i]) for t in times] for i in range(n)],
        x0=[x0[i] for i in range(n)],
        conditions=[None] * n,
    )


def _detach(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().float().clone()
    if isinstance(obj, (list, tuple)):
        return [_detach(o) for o in obj]
    return obj


@torch.no_grad()
def edit_teacher_data(generator: Any, images: list[Any], instructions: list[str], seeds: list[int], steps: int,
                      size: int, guidance: float) -> DistillData:
    """Run the generator's own edit call (its denoiser is the unpruned teacher) and record, per edit, the
    denoiser inputs of the first (positive) call of each step: the noisy latent, its time, the caption
    segments, the clean condition latents and the per-item keyword arguments (``image_noise_mask``, ...).
    ``x_0`` is the teacher's clean estimate at its last state, ``x + sigma * v`` (exact for an Euler
    sampler's last step to sigma 0)."""
    _require_zimage(generator)
    if not instructions:
        return DistillData()
    n = len(instructions)
    calls: list[tuple[list, torch.Tensor, list, dict, Any]] = []

    def grab(_module: Any, args: tuple, kwargs: dict, output: Any) -> None:
        x = args[0] if args else kwargs["x"]
        t = args[1] if len(args) > 1 else kwargs["t"]
        caps = args[2] if len(args) > 2 else kwargs["cap_feats"]
        per_item = {k: v[:n] for k, v in kwargs.items()
                    if k not in ("x", "t", "cap_feats") and isinstance(v, list) and len(v) == len(x)}
        out = output[0] if isinstance(output, tuple) else getattr(output, "sample", output)
        calls.append((list(x[:n]), torch.as_tensor(t).reshape(-1)[:n].float().clone(), list(caps[:n]),
                      per_item, [o.detach().float() for o in out[:n]]))

    handle = generator.denoiser.register_forward_hook(grab, with_kwargs=True)
    try:
        generator.edit(list(images), list(instructions), [int(s) for s in seeds], steps, guidance, size)
    finally:
        handle.remove()
    if not calls or len(calls) % steps:
        raise TmpbenchError(f"recovery: the edit call made {len(calls)} denoiser calls for {steps} steps; "
                            "expected the same number per step")
    firsts = calls[:: len(calls) // steps]
    data = DistillData()
    for i in range(n):
        xs = [c[0][i] for c in firsts]
        omni = isinstance(xs[0], (list, tuple))
        noisy = [_detach(x[-1] if omni else x) for x in xs]
        times = [float(c[1][i]) for c in firsts]
        v = firsts[-1][4][i]
        x0 = (noisy[-1] + (1.0 - times[-1]) * v).squeeze(1)
        cond = {"x": [_detach(c) for c in xs[-1][:-1]], "kwargs": {k: _detach(vals[i]) for k, vals in firsts[-1][3].items()}}
        data = data + DistillData([_detach(firsts[0][2][i])], [noisy], [times], [x0], [cond if omni else None])
    return data


def task_data(generator: Any, teacher: torch.nn.Module, spec: Any, split: str, counts: dict[str, int] | None = None
              ) -> tuple[DistillData, dict[str, list[str]]]:
    """Teacher data of ``spec``'s items of ``split`` (``counts`` per task, default the spec's): its T2I
    prompts and its edits, plus ``{suite: [item ids]}`` of the items used."""
    counts = counts or spec.counts
    guidance = spec.guidance if spec.guidance is not None else 1.0
    prompts, seeds, _ = spec.prompts(split=split, n=counts["t2i"])
    data = teacher_data(generator, teacher, prompts, seeds, spec.steps, spec.size, guidance)
    if counts["edit"]:
        if not getattr(generator, "supports_edit", False):
            raise TmpbenchError(
                f"recovery: calibration mix {dict(spec.mix or ())} has edits, but model {getattr(generator, 'name', '?')!r} "
                "does not support editing; use --calibration-mix t2i=1"
            )
        images, instructions, edit_seeds, _ = spec.edits(spec.size, split=split, n=counts["edit"])
        data = data + edit_teacher_data(generator, images, instructions, edit_seeds, spec.steps, spec.size, guidance)
    return data, spec.item_ids(split, counts)


def _final_layer(model: torch.nn.Module) -> torch.nn.Module:
    layers = getattr(model, "all_final_layer", None)
    if layers is None:
        raise TmpbenchError(f"{type(model).__name__} has no all_final_layer; use feature_weight=0")
    return next(iter(layers.values()))


def _forward(model: torch.nn.Module, batch: list[tuple], want_features: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The denoiser's outputs (stacked) on ``batch``, all T2I items or all edits (one call), and the hidden
    state entering its final layer when ``want_features``."""
    feats: list[torch.Tensor] = []
    handle = None
    if want_features:
        handle = _final_layer(model).register_forward_pre_hook(lambda m, a: feats.append(a[0]))
    try:
        dtype = next(model.parameters()).dtype
        t = torch.tensor([b[1] for b in batch], dtype=dtype)
        conds = [b[3] for b in batch]
        if conds[0] is None:
            xs = [b[0].to(dtype) for b in batch]
            caps = [b[2].to(dtype) for b in batch]
            out = model(xs, t, caps, return_dict=False)[0]
        else:
            xs = [[*(c.to(dtype) for c in cond["x"]), b[0].to(dtype)] for b, cond in zip(batch, conds)]
            caps = [[seg.to(dtype) for seg in b[2]] for b in batch]
            kwargs = {k: [cond["kwargs"][k] for cond in conds] for k in conds[0]["kwargs"]}
            out = model(xs, t, caps, return_dict=False, **kwargs)[0]
    finally:
        if handle is not None:
            handle.remove()
    return torch.stack([o.float() for o in out]), (feats[0].float() if feats else None)


def make_batch(data: DistillData, batch: int, fresh_fraction: float, gen: torch.Generator) -> list[tuple]:
    """One batch of ``(state x_t, time t, caption, condition)``: trajectory states and fresh re-noised
    teacher samples ``x_t = (1 - s) x_0 + s eps`` of random items (T2I items and edits alike)."""
    idx = torch.randint(len(data), (batch,), generator=gen).tolist()
    fresh = (torch.rand(batch, generator=gen) < fresh_fraction).tolist()
    out = []
    for i, is_fresh in zip(idx, fresh):
        if is_fresh or not data.states[i]:
            sigma = float(torch.rand((), generator=gen))
            eps = torch.randn(data.x0[i].shape, generator=gen)
            x, t = ((1.0 - sigma) * data.x0[i] + sigma * eps).unsqueeze(1), 1.0 - sigma
        else:
            s = int(torch.randint(len(data.states[i]), (), generator=gen))
            x, t = data.states[i][s], data.times[i][s]
        out.append((x, float(t), data.captions[i], data.conditions[i]))
    return out


def distill_loss(teacher: torch.nn.Module, student: torch.nn.Module, batch: list[tuple], output_weight: float = 1.0,
                 feature_weight: float = 0.0) -> torch.Tensor:
    """KD loss of ``student`` against ``teacher`` on one batch (teacher without grad): T2I items and edits
    go through the denoiser in separate calls; the loss is their item-weighted mean."""
    total = None
    for group in ([b for b in batch if b[3] is None], [b for b in batch if b[3] is not None]):
        if not group:
            continue
        with torch.no_grad():
            target, target_feat = _forward(teacher, group, feature_weight > 0)
        out, feat = _forward(student, group, feature_weight > 0)
        loss = output_weight * F.mse_loss(out, target)
        if feature_weight > 0:
            loss = loss + feature_weight * F.mse_loss(feat, target_feat)
        part = loss * (len(group) / len(batch))
        total = part if total is None else total + part
    return total


def distill(generator: Any, student: torch.nn.Module, spec: Any, recipe: Any, progress: bool = True
            ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Distil ``student`` (the pruned denoiser, trained in place) from a deep copy of
    ``generator.denoiser`` following ``recipe`` on the ``calib`` items of ``spec`` (its task mix);
    returns (student, log).

    The log holds the per-step losses, the loss before and after on a fixed batch of
    ``recipe.held_out`` ``dev`` items (``held_out_before``/``held_out_after``), and the item ids of
    both sets (``item_ids``, ``held_out_item_ids``: ``{suite: [id, ...]}``).
    """
    from tqdm.auto import tqdm

    from tmpbench.pruning.recipes import CALIB_SPLIT, HELD_OUT_SPLIT, mix_counts

    _require_zimage(generator)
    if recipe.steps < 1:
        return student, {}
    if spec.steps is None or spec.size is None:
        raise TmpbenchError("recovery needs a resolved calibration spec (steps and size set)")
    teacher = copy.deepcopy(generator.denoiser).eval().requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        data, item_ids = task_data(generator, teacher, spec, CALIB_SPLIT)
        dev, dev_ids = task_data(generator, teacher, spec, HELD_OUT_SPLIT, mix_counts(spec.mix, recipe.held_out))
        gen = torch.Generator().manual_seed(recipe.seed)
        held_out = make_batch(dev, max(recipe.batch, 4), recipe.fresh_fraction, torch.Generator().manual_seed(recipe.seed + 1))
        weights = dict(output_weight=recipe.output_weight, feature_weight=recipe.feature_weight)
        with torch.no_grad():
            before = float(distill_loss(teacher, student, held_out, **weights))
        student.train()
        student.requires_grad_(True)
        params = [p for p in student.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
        losses = []
        bar = tqdm(range(recipe.steps), desc="recover (KD)", disable=not progress, leave=False)
        for _ in bar:
            loss = distill_loss(teacher, student, make_batch(data, recipe.batch, recipe.fresh_fraction, gen), **weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
            opt.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.4g}")
        student.eval()
        student.requires_grad_(False)
        with torch.no_grad():
            after = float(distill_loss(teacher, student, held_out, **weights))
    del teacher
    return student, {"steps": recipe.steps, "losses": losses, "held_out_before": before, "held_out_after": after,
                     "held_out_split": HELD_OUT_SPLIT, "states": sum(len(s) for s in data.states),
                     "prompts": len(data) - data.n_edits, "edits": data.n_edits,
                     "item_ids": item_ids, "held_out_item_ids": dev_ids}
