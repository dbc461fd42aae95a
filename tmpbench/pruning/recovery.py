"""Recovery: knowledge distillation of a pruned denoiser from its unpruned teacher.

One recipe (:class:`tmpbench.pruning.recipes.RecoveryRecipe`) for every pruner: a fixed number of
AdamW steps at a fixed learning rate, seeded, with a tqdm progress bar. The data is made once from
the calibration prompts (:class:`tmpbench.pruning.recipes.CalibrationSpec`):

1. the captions are encoded by the generator's own pipeline (``pipe.encode_prompt``);
2. the teacher (a deep copy of the ORIGINAL denoiser, frozen) samples each prompt with its seed
   through the pipeline itself; a forward pre-hook records the states ``x_t`` and times ``t`` of
   its trajectory, and the final latents ``x_0`` are kept;
3. each training batch mixes trajectory states with fresh states ``x_t = (1 - s) x_0 + s eps`` at a
   uniformly random noise level ``s`` (Z-Image's flow-matching convention, model time ``t = 1 - s``);
4. the target is the teacher's denoiser output on exactly those inputs; the loss is
   ``output_weight * MSE(student, teacher)`` plus ``feature_weight * MSE`` of the hidden state
   entering the final layer.

Supported: Z-Image-family pipelines (``pipe.transformer`` called as ``transformer(x_list, t,
cap_feats_list)``), dense and MoE. HunyuanImage-3.0 recovery needs its image pipeline and a GPU
cluster; asking for it raises a one-line error.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from tmpbench.errors import TmpbenchError


@dataclass
class DistillData:
    """Teacher-made training material: captions, trajectory states and final latents."""

    captions: list[torch.Tensor]  # per prompt (L_i, D)
    states: list[torch.Tensor]  # per step (B, C, 1, H, W): the teacher's own x_t
    times: list[torch.Tensor]  # per step (B,): model time t = 1 - sigma
    x0: torch.Tensor  # (B, C, H, W) final latents of the teacher's samples


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
    return DistillData([c.detach() for c in captions], states, times, x0)


def _final_layer(model: torch.nn.Module) -> torch.nn.Module:
    layers = getattr(model, "all_final_layer", None)
    if layers is None:
        raise TmpbenchError(f"{type(model).__name__} has no all_final_layer; use feature_weight=0")
    return next(iter(layers.values()))


def _forward(model: torch.nn.Module, xs: list[torch.Tensor], t: torch.Tensor, caps: list[torch.Tensor],
             want_features: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    feats: list[torch.Tensor] = []
    handle = None
    if want_features:
        handle = _final_layer(model).register_forward_pre_hook(lambda m, a: feats.append(a[0]))
    try:
        dtype = next(model.parameters()).dtype
        out = model([x.to(dtype) for x in xs], t.to(dtype), [c.to(dtype) for c in caps], return_dict=False)[0]
    finally:
        if handle is not None:
            handle.remove()
    return torch.stack([o.float() for o in out]), (feats[0].float() if feats else None)


def make_batch(data: DistillData, batch: int, fresh_fraction: float, gen: torch.Generator
               ) -> tuple[list[torch.Tensor], torch.Tensor, list[torch.Tensor]]:
    """One batch of (states, times, captions): trajectory states and fresh re-noised teacher samples."""
    n = data.x0.shape[0]
    idx = torch.randint(n, (batch,), generator=gen).tolist()
    fresh = (torch.rand(batch, generator=gen) < fresh_fraction).tolist()
    xs, ts, caps = [], [], []
    for i, is_fresh in zip(idx, fresh):
        if is_fresh or not data.states:
            sigma = float(torch.rand((), generator=gen))
            eps = torch.randn(data.x0[i].shape, generator=gen)
            xs.append(((1.0 - sigma) * data.x0[i] + sigma * eps).unsqueeze(1))
            ts.append(1.0 - sigma)
        else:
            s = int(torch.randint(len(data.states), (), generator=gen))
            xs.append(data.states[s][i])
            ts.append(float(data.times[s][i]))
        caps.append(data.captions[i])
    return xs, torch.tensor(ts), caps


def distill_loss(teacher: torch.nn.Module, student: torch.nn.Module, xs: list[torch.Tensor], t: torch.Tensor,
                 caps: list[torch.Tensor], output_weight: float = 1.0, feature_weight: float = 0.0) -> torch.Tensor:
    """KD loss of ``student`` against ``teacher`` on one batch (teacher without grad)."""
    with torch.no_grad():
        target, target_feat = _forward(teacher, xs, t, caps, feature_weight > 0)
    out, feat = _forward(student, xs, t, caps, feature_weight > 0)
    loss = output_weight * F.mse_loss(out, target)
    if feature_weight > 0:
        loss = loss + feature_weight * F.mse_loss(feat, target_feat)
    return loss


def distill(generator: Any, student: torch.nn.Module, spec: Any, recipe: Any, progress: bool = True
            ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Distil ``student`` (the pruned denoiser, trained in place) from a deep copy of
    ``generator.denoiser`` following ``recipe`` on the prompts of ``spec``; returns (student, log).

    The log holds the per-step losses and the loss on a fixed held-out batch before and after.
    """
    from tqdm.auto import tqdm

    _require_zimage(generator)
    if recipe.steps < 1:
        return student, {}
    if spec.steps is None or spec.size is None:
        raise TmpbenchError("recovery needs a resolved calibration spec (steps and size set)")
    teacher = copy.deepcopy(generator.denoiser).eval().requires_grad_(False)
    prompts, seeds, _ = spec.prompts()
    if not prompts:
        raise TmpbenchError(
            "recovery distils on the calibration's T2I prompts and this calibration mix has none; "
            "give --calibration-mix with a t2i share, or --recover-steps 0"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        data = teacher_data(generator, teacher, prompts, seeds, spec.steps, spec.size,
                            spec.guidance if spec.guidance is not None else 1.0)
        gen = torch.Generator().manual_seed(recipe.seed)
        held_out = make_batch(data, max(recipe.batch, 4), recipe.fresh_fraction, torch.Generator().manual_seed(recipe.seed + 1))
        weights = dict(output_weight=recipe.output_weight, feature_weight=recipe.feature_weight)
        with torch.no_grad():
            before = float(distill_loss(teacher, student, *held_out, **weights))
        student.train()
        student.requires_grad_(True)
        params = [p for p in student.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
        losses = []
        bar = tqdm(range(recipe.steps), desc="recover (KD)", disable=not progress, leave=False)
        for _ in bar:
            loss = distill_loss(teacher, student, *make_batch(data, recipe.batch, recipe.fresh_fraction, gen), **weights)
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
            after = float(distill_loss(teacher, student, *held_out, **weights))
    del teacher
    return student, {"steps": recipe.steps, "losses": losses, "held_out_before": before, "held_out_after": after,
                     "states": len(data.states), "prompts": len(prompts)}
