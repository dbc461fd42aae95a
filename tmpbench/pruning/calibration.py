"""Calibration data: the denoiser's own inputs along the teacher's sampling trajectory.

Pruners that score with data (TMP's masked-output sensitivity, activation/Taylor, block influence,
routing frequency, REAP) all read the same :class:`Calibration`. It is collected by running the
generator's ordinary sampling loop with a forward pre-hook on its denoiser, so every denoising
timestep of the real schedule is represented (a pruned block that only matters at high noise is
seen at high noise). Nothing model-specific is assumed about the call: the ``(args, kwargs)`` of
each ``denoiser.forward`` call are stored detached on the CPU and replayed as they came.

Linear maps for ``linear_replace`` decisions are fitted here too (:func:`fit_linear_maps`), from
the unpruned model's block inputs and outputs on the same calibration inputs.

Example::

    >>> calib = collect_calibration(gen, ["a red circle"], seeds=[0], steps=4, size=32)  # doctest: +SKIP
    >>> len(calib.inputs), calib.timesteps                                              # doctest: +SKIP
    (4, [0.0, 0.25, 0.5, 0.75])
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tmpbench.errors import TmpbenchError
from tmpbench.pruning.plan import Plan
from tmpbench.pruning.surgery import fit_linear_map


def _map_tensors(obj: Any, fn) -> Any:
    """Apply ``fn`` to every tensor inside nested lists/tuples/dicts (other leaves pass through)."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, list):
        return [_map_tensors(o, fn) for o in obj]
    if isinstance(obj, tuple):
        return tuple(_map_tensors(o, fn) for o in obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    return obj


def _to_cpu(obj: Any) -> Any:
    return _map_tensors(obj, lambda t: t.detach().to("cpu").clone())


def to_device(obj: Any, device: torch.device) -> Any:
    """``obj`` (tensors nested in tuples, lists and dicts) with every tensor moved to ``device``."""
    return _map_tensors(obj, lambda t: t.to(device))


def flatten_output(out: Any) -> torch.Tensor:
    """The denoiser's prediction as one flat float tensor (``.sample``; a decoder's ``.logits`` or
    ``.last_hidden_state``; a tuple's first item; or a list of per-sample tensors, concatenated)."""
    if hasattr(out, "sample"):
        out = out.sample
    elif isinstance(getattr(out, "logits", None), torch.Tensor):
        out = out.logits
    elif isinstance(getattr(out, "last_hidden_state", None), torch.Tensor):
        out = out.last_hidden_state
    elif isinstance(out, tuple):
        out = out[0]
    if isinstance(out, (list, tuple)):
        parts = [flatten_output(o) for o in out]
        return torch.cat(parts) if parts else torch.zeros(0)
    if not isinstance(out, torch.Tensor):
        raise TmpbenchError(f"denoiser returned {type(out).__name__}; expected a tensor, a list of tensors, .sample or .logits")
    return out.detach().float().reshape(-1)


def _timestep_of(args: tuple, kwargs: dict) -> float:
    """The (first sample's) timestep of one denoiser call: kwarg ``t``/``timestep``, else the first
    small float tensor among the positional arguments (Z-Image: ``forward(x, t, cap_feats)``)."""
    for key in ("t", "timestep", "timesteps"):
        value = kwargs.get(key)
        if isinstance(value, torch.Tensor):
            return float(value.reshape(-1)[0])
        if isinstance(value, (int, float)):
            return float(value)
    for a in args:
        if isinstance(a, torch.Tensor) and a.dim() <= 1 and a.is_floating_point() and a.numel() >= 1:
            return float(a.reshape(-1)[0])
    return float("nan")


def offloaded(module: nn.Module) -> bool:
    """Whether accelerate offloads some of ``module``'s weights (an ``AlignDevicesHook`` with
    ``offload=True``: the weights live on the CPU or on disk and are on the meta device between calls).
    Such a model runs, so activations and outputs can be measured; its weights cannot be read or
    edited in place."""
    return any(getattr(getattr(m, "_hf_hook", None), "offload", False) for m in module.modules())


@contextmanager
def onloaded(module: nn.Module, recurse: bool = True) -> Iterator[nn.Module]:
    """``module`` with the weights accelerate offloads loaded for the block, to read (not edit): each
    offloaded submodule's hook loads them as for a call and drops them on exit (``align_module_device``).
    With ``recurse=False`` only the module's own parameters are loaded. A module nothing offloads is
    yielded as is."""
    with ExitStack() as stack:
        if offloaded(module):
            from accelerate.utils import align_module_device, has_offloaded_params

            for m in module.modules() if recurse else [module]:
                if has_offloaded_params(m):
                    stack.enter_context(align_module_device(m))
        yield module


def execution_device(module: nn.Module) -> torch.device:
    """Where ``module`` computes. Under accelerate's offloading (``from_pretrained(device_map=...,
    offload_folder=...)``, ``disk_offload``, ``cpu_offload``) its weights sit on the meta device
    between calls and its ``AlignDevicesHook`` names the execution device; otherwise it is where its
    first parameter lives (the CPU for a module without any)."""
    device = getattr(getattr(module, "_hf_hook", None), "execution_device", None)
    if device is not None:
        return torch.device(f"cuda:{device}" if isinstance(device, int) else device)
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@dataclass
class Calibration:
    """Captured denoiser calls, replayable on any copy of the denoiser.

    ``identity`` describes how the set was made (prompt hash, seeds, steps, size, guidance,
    timesteps) and is recorded with every plan and result. ``inputs[i]`` is the ``(args, kwargs)``
    of call ``i`` (detached, CPU), ``timesteps[i]`` its timestep.
    """

    identity: dict
    inputs: list[tuple[tuple, dict]]
    timesteps: list[float]
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.timesteps):
            raise TmpbenchError(f"calibration has {len(self.inputs)} inputs but {len(self.timesteps)} timesteps")
        if not self.inputs:
            raise TmpbenchError("calibration captured no denoiser calls; give at least one prompt and one step")

    def __len__(self) -> int:
        return len(self.inputs)

    def call(self, denoiser: nn.Module, i: int) -> Any:
        """Run ``denoiser`` on captured input ``i`` (moved to its device) and return the raw output."""
        args, kwargs = self.inputs[i]
        device = execution_device(denoiser)
        return denoiser(*to_device(args, device), **to_device(kwargs, device))

    @torch.no_grad()
    def outputs(self, denoiser: nn.Module) -> list[torch.Tensor]:
        """Re-run ``denoiser`` on every captured input (no grad); one flat float tensor per input."""
        return [flatten_output(self.call(denoiser, i)).cpu() for i in range(len(self))]

    def subset(self, max_inputs: int | None) -> Calibration:
        """At most ``max_inputs`` inputs, evenly spaced over the captured order (so over timesteps)."""
        if max_inputs is None or max_inputs >= len(self):
            return self
        if max_inputs < 1:
            raise TmpbenchError(f"max_inputs must be >= 1, got {max_inputs}")
        return self.select(spread_indices(len(self), max_inputs))

    def select(self, idx: list[int]) -> Calibration:
        """The inputs at positions ``idx`` (in that order), recorded in the identity."""
        ident = {**self.identity, "subset": list(idx), "n_inputs": len(idx)}
        return Calibration(ident, [self.inputs[i] for i in idx], [self.timesteps[i] for i in idx])


WEIGHTINGS = ("uniform", "noisy", "clean")


def timestep_weights(timesteps: list[float], weighting: str) -> list[float]:
    """Per-input weights: uniform, or favouring noisy (t near 0 in Z-Image's convention) or clean inputs."""
    if weighting not in WEIGHTINGS:
        raise TmpbenchError(f"timestep weighting {weighting!r} is unknown; use one of {', '.join(WEIGHTINGS)}")
    if weighting == "uniform" or any(not math.isfinite(t) for t in timesteps):
        return [1.0] * len(timesteps)
    if weighting == "noisy":
        return [1.1 - min(max(t, 0.0), 1.0) for t in timesteps]
    return [0.1 + min(max(t, 0.0), 1.0) for t in timesteps]


@torch.no_grad()
def relative_output_error(
    model: nn.Module,
    calibration: Calibration,
    reference: list[torch.Tensor],
    weights: list[float] | None = None,
) -> float:
    """Relative output error ``E_t ||f(x_t) - f_ref(x_t)||^2 / ||f_ref(x_t)||^2`` of ``model`` against the
    unpruned outputs ``reference`` (:meth:`Calibration.outputs` of the teacher), weighted per input by
    ``weights`` (uniform by default). TMP's search scores masked states with it, and the runner scores
    the physically pruned model with it, so the two numbers are comparable."""
    outputs = (flatten_output(calibration.call(model, i)).cpu() for i in range(len(calibration)))
    return _weighted_relative_error(outputs, reference, weights)


def _weighted_relative_error(outputs: Any, reference: list[torch.Tensor], weights: list[float] | None) -> float:
    """``sum_i w_i ||y_i - r_i||^2 / ||r_i||^2 / sum_i w_i`` over ``outputs`` (an iterable of flat tensors)
    and ``reference``; a non-finite term counts as 1e6."""
    w = weights or [1.0] * len(reference)
    total, norm = 0.0, 0.0
    for i, y in enumerate(outputs):
        r = reference[i]
        err = float(((y - r) ** 2).sum() / (r ** 2).sum().clamp_min(1e-12))
        if not math.isfinite(err):
            err = 1e6
        total += w[i] * err
        norm += w[i]
    return total / max(norm, 1e-12)


class _BlockReached(Exception):
    """Raised by :func:`relative_block_error`'s hook to stop a forward once the block has returned."""

    def __init__(self, output: Any) -> None:
        super().__init__()
        self.output = output


@torch.no_grad()
def relative_block_error(
    model: nn.Module,
    block: str,
    calibration: Calibration,
    reference: list[torch.Tensor],
    weights: list[float] | None = None,
) -> float:
    """Relative error of one block's output, ``E_t ||b(x_t) - b_ref(x_t)||^2 / ||b_ref(x_t)||^2``, the
    same form as :func:`relative_output_error` one level down: each call runs until ``block`` (the module
    at that path while the call runs, so a masked or swapped one) returns, and stops there; nothing after
    it runs. ``reference[i]`` is the unpruned block's flat output on call ``i``. With the blocks before it
    replayed from the teacher's records, its inputs are the teacher's, so this is the block's own share of
    a state's error, for the FLOPs of that block (TMP's local probes, docs/tmp.md §4d)."""
    def stop(_m: nn.Module, _a: tuple, out: Any) -> None:
        raise _BlockReached(out)

    def outputs() -> Iterator[torch.Tensor]:
        for i in range(len(calibration)):
            try:
                calibration.call(model, i)
            except _BlockReached as reached:
                yield flatten_output(reached.output).cpu()
            else:
                raise TmpbenchError(f"block {block!r} did not run during calibration call {i}")

    handle = model.get_submodule(block).register_forward_hook(stop)
    try:
        return _weighted_relative_error(outputs(), reference, weights)
    finally:
        handle.remove()


def spread_indices(n: int, k: int) -> list[int]:
    """``k`` positions of ``n`` evenly spaced over the captured order (so over timesteps and, for a
    mixed calibration, over its t2i and edit calls), first and last included."""
    if k >= n:
        return list(range(n))
    if k == 1:
        return [n // 2]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def collect_calibration(
    generator: Any,
    prompts: list[str],
    seeds: list[int],
    steps: int,
    size: int,
    guidance: float = 1.0,
    max_inputs: int | None = None,
    edits: tuple[list[Any], list[str], list[int]] | None = None,
) -> Calibration:
    """Run ``generator.generate`` and capture every call of ``generator.denoiser`` along the way.

    A forward pre-hook (``with_kwargs=True``) copies each call's arguments to the CPU, so the
    calibration spans all ``steps`` denoising timesteps of the generator's own schedule. With
    ``max_inputs`` the captured calls are thinned evenly over the trajectory. ``edits`` = (source
    images, instructions, seeds) adds the calls of ``generator.edit`` on them (a T2I + editing task
    mix; the source image rides in the denoiser's input). Returns a
    :class:`Calibration` whose ``identity`` hashes the prompts and records seeds, steps, size,
    guidance and the timesteps kept.
    """
    prompts = [str(p) for p in prompts]
    seeds = [int(s) for s in seeds]
    edit_images, edit_texts, edit_seeds = edits if edits is not None else ([], [], [])
    edit_texts, edit_seeds = [str(t) for t in edit_texts], [int(s) for s in edit_seeds]
    if not prompts and not edit_texts:
        raise TmpbenchError("calibration needs at least one prompt or edit")
    if not (len(edit_images) == len(edit_texts) == len(edit_seeds)):
        raise TmpbenchError(f"calibration edits: {len(edit_images)} images, {len(edit_texts)} instructions, {len(edit_seeds)} seeds")
    if len(prompts) != len(seeds):
        raise TmpbenchError(f"calibration got {len(prompts)} prompts but {len(seeds)} seeds; pass one seed per prompt")
    if steps < 1:
        raise TmpbenchError(f"calibration steps={steps} must be at least 1")
    if max_inputs is not None and max_inputs < 1:
        raise TmpbenchError(f"calibration max_inputs={max_inputs} must be >= 1 (or None for all)")
    denoiser = generator.denoiser
    captured: list[tuple[tuple, dict]] = []

    def hook(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        captured.append((_to_cpu(args), _to_cpu(kwargs)))

    handle = denoiser.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        if prompts:
            generator.generate(prompts, seeds=seeds, steps=steps, guidance=guidance, size=size)
        n_t2i = len(captured)
        if edit_texts:
            generator.edit(list(edit_images), edit_texts, edit_seeds, steps, guidance, size)
    finally:
        handle.remove()
    if not captured:
        raise TmpbenchError(f"generator {getattr(generator, 'name', '?')!r} never called its denoiser during calibration")
    timesteps = [_timestep_of(a, k) for a, k in captured]
    identity = {
        "prompts_sha256": hashlib.sha256(json.dumps(prompts).encode()).hexdigest()[:16],
        "n_prompts": len(prompts),
        "seeds": seeds,
        "steps": int(steps),
        "size": int(size),
        "guidance": float(guidance),
        "max_inputs": max_inputs,
        "n_calls": len(captured),
    }
    if edit_texts:
        identity.update(
            edits_sha256=hashlib.sha256(json.dumps(edit_texts).encode()).hexdigest()[:16], n_edits=len(edit_texts),
            edit_seeds=edit_seeds, n_edit_calls=len(captured) - n_t2i,
        )
    calib = Calibration(identity, captured, timesteps)
    calib = calib.subset(max_inputs)
    calib.identity["n_inputs"] = len(calib)
    calib.identity["timesteps"] = [round(t, 6) for t in calib.timesteps]
    return calib


def data_free_calibration(tree: Any) -> None:
    """Calibration for meta-device planning: there is none (``None``); pruners that can fall back to
    data-free proxies do (see docs/tmp.md), the others refuse with a one-line error."""
    return None


# --------------------------------------------------------------------------------------------
# block inputs and outputs, and the fitted linear maps
# --------------------------------------------------------------------------------------------
@contextmanager
def capture_blocks(model: nn.Module, paths: list[str]) -> Iterator[dict[str, list[tuple[torch.Tensor, torch.Tensor]]]]:
    """While active, record (input hidden state, output hidden state) of each block in ``paths``
    at every forward pass, detached on the CPU: ``records[path] = [(x_in, x_out), ...]``."""
    records: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {p: [] for p in paths}
    handles = []

    def make(path: str):
        def hook(_m: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
            x = args[0] if args else next(iter(kwargs.values()))
            y = out[0] if isinstance(out, tuple) else out
            records[path].append((x.detach().float().cpu(), y.detach().float().cpu()))

        return hook

    try:
        for p in paths:
            handles.append(model.get_submodule(p).register_forward_hook(make(p), with_kwargs=True))
        yield records
    finally:
        for h in handles:
            h.remove()


@dataclass
class BlockReplay:
    """The teacher's own block outputs on a calibration set, for evaluating a state from its first
    touched block on (docs/tmp.md, "block-local evaluation").

    ``order`` lists the blocks in the order the denoiser runs them; ``outputs[path][i]`` is what block
    ``path`` returned on calibration input ``i`` (detached, on the model's device, in its dtype and
    structure). ``share[path]`` is the FLOPs share of a forward spent in that block, so a forward that
    replays blocks costs ``1 - sum(share of the replayed blocks)`` forward-equivalents.
    """

    order: list[str]
    outputs: dict[str, list[Any]]
    share: dict[str, float]
    final: list[torch.Tensor] = field(default_factory=list)  # the denoiser's own outputs (flat, CPU), same pass

    def prefix(self, first: str | None) -> list[str]:
        """Blocks run before ``first`` (all of them when ``first`` is None: nothing is touched)."""
        if first is None:
            return list(self.order)
        return self.order[: self.order.index(first)] if first in self.order else []

    def cost(self, replayed: list[str]) -> float:
        """Forward-equivalents of one forward that replays ``replayed``."""
        return max(0.0, 1.0 - sum(self.share.get(p, 0.0) for p in replayed))


@torch.no_grad()
def capture_replay(model: nn.Module, paths: list[str], calibration: Calibration,
                   flops: dict[str, float], total_flops: float) -> BlockReplay:
    """Run the unpruned ``model`` over ``calibration`` once and keep each block's outputs in call order,
    and the denoiser's outputs (``final``, as :meth:`Calibration.outputs` gives them) from the same pass.

    A block called other than exactly once per denoiser call (weight sharing, checkpointing) is left
    out, so it is never replayed; blocks after it still are only if they come before it in ``order``."""
    calls: dict[str, list[Any]] = {p: [] for p in paths}
    order: list[str] = []
    handles = []

    def make(path: str):
        def hook(_m: nn.Module, _a: tuple, out: Any) -> None:
            if path not in order:
                order.append(path)
            calls[path].append(_map_tensors(out, lambda t: t.detach().clone()))

        return hook

    try:
        for p in paths:
            handles.append(model.get_submodule(p).register_forward_hook(make(p)))
        final = [flatten_output(calibration.call(model, i)).cpu() for i in range(len(calibration))]
    finally:
        for h in handles:
            h.remove()
    # replay is exact only up to the first block whose call count is off
    n = len(calibration)
    kept: list[str] = []
    for p in order:
        if len(calls[p]) != n:
            break
        kept.append(p)
    total = max(float(total_flops), 1e-9)
    return BlockReplay(kept, {p: calls[p] for p in kept}, {p: float(flops.get(p, 0.0)) / total for p in kept}, final)


@torch.no_grad()
def fit_block_maps(
    model: nn.Module, paths: list[str], calibration: Calibration, ridge: float | dict[str, float] = 0.0
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Least-squares linear map (W, b) from each block's input hidden state to its output, over all
    tokens of all calibration inputs (every timestep), on the unpruned ``model``. ``ridge`` is one
    value or one per path."""
    if not paths:
        return {}
    with capture_blocks(model, paths) as records:
        for i in range(len(calibration)):
            calibration.call(model, i)
    return fit_recorded_maps(model, paths, records, ridge)


def fit_recorded_maps(model: nn.Module, paths: list[str], records: dict[str, list[tuple[torch.Tensor, torch.Tensor]]],
                      ridge: float | dict[str, float] = 0.0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """:func:`fit_block_maps` from block records already captured (:func:`capture_blocks` around a pass
    over the calibration inputs that served something else too, e.g. :func:`capture_replay`)."""
    maps = {}
    dtype = next(model.parameters()).dtype
    for p in paths:
        xs = torch.cat([x.reshape(-1, x.shape[-1]) for x, _ in records[p]])
        ys = torch.cat([y.reshape(-1, y.shape[-1]) for _, y in records[p]])
        r = ridge.get(p, 0.0) if isinstance(ridge, dict) else ridge
        w, b = fit_linear_map(xs, ys, ridge=float(r))
        maps[p] = (w.to(dtype), b.to(dtype))
    return maps


def fit_linear_maps(model: nn.Module, plan: Plan, calibration: Calibration | None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Fitted ``(W, b)`` for every ``linear_replace`` decision of ``plan``, keyed by block path.

    Fitted on the UNPRUNED ``model`` (the teacher) from its block inputs/outputs on the calibration
    inputs, through :func:`tmpbench.pruning.surgery.fit_linear_map`; pass the result to
    ``apply_plan(model, plan, linear_maps=...)``. A plan without such decisions gives ``{}``.
    """
    paths = [d.path for d in plan.decisions if d.policy == "linear_replace"]
    if not paths:
        return {}
    if calibration is None:
        raise TmpbenchError(
            f"plan replaces {len(paths)} block(s) with fitted linear maps ({paths[0]}...) but no calibration data "
            "was given to fit them; collect calibration (the runner does) or plan without linear_replace"
        )
    linear = {d.path: d.linear or {} for d in plan.decisions if d.policy == "linear_replace"}
    ridge = {p: float(v.get("ridge", 0.0)) for p, v in linear.items()}
    # a plan whose search fitted its maps on a subset (``fit_inputs``) gets the same maps here
    maps: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for n in sorted({v.get("fit_inputs") for v in linear.values()}, key=lambda n: (n is None, n or 0)):
        group = [p for p in paths if linear[p].get("fit_inputs") == n]
        maps.update(fit_block_maps(model, group, calibration.subset(n), ridge=ridge))
    return maps
