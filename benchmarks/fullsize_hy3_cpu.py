"""HunyuanImage-3.0 at full width on this CPU, a few decoder layers at a time, with the whole model extrapolated.

Nothing is downloaded. The model is the ``hunyuanimage3`` entry's meta build (transformers'
``HunYuanMoEV1ForCausalLM`` at HunyuanImage-3.0's published config, ``tmpbench.models.hunyuan``: hidden
4096, 32 decoder layers of 32 query / 8 KV heads, 64 routed experts of width 3072 (top-8) and one shared
expert; 80.96B parameters, 2.50B = 4.99 GB in bf16 per decoder layer). It stays on the meta device; only
``--layers-at-once`` layers hold real tensors at any time. Steps:

1. **plan**: TMP under ``--budget`` on the whole meta model with its data-free proxy (what
   ``tmpbench plan --model hunyuanimage3 --meta --pruner tmp --budget 20b`` does), saved as ``plan.json``.
2. **non-layer part** (token embedding, final norm, LM head: 1.09B), once: materialise, save, reload.
3. ``--layers`` layers in groups of ``--layers-at-once`` consecutive layers, the groups spread over the
   depth (the first and the last layer always among them). Per group, stage by stage, per layer:

   a. *materialise*: the layer's meta tensors allocated in bf16, submodule by submodule, and filled
      (normal, std 0.02; norms 1; ``_fullsize.materialise``, seeded by the layer index);
   b. *forward (full width)*: the group's layers in order over one synthetic hidden-state batch of
      ``(size / 16)^2 + 128`` tokens (the unit tree's token count at ``--size`` px: 144 at 64 px), with
      rotary position embeddings and causal attention (no mask tensor: sdpa's ``is_causal``);
   c. *surgery*: the plan's decisions inside that layer (its sub-plan) replayed in place by the layout's
      own replay (``apply_hunyuan_plan(copy=False)``, validated against the whole model's unit tree);
   d. *save*: the pruned layer's state dict as safetensors; the in-memory layer goes back to meta;
   e. *reload*: a fresh meta layer in its slot, the sub-plan (read back from ``plan.json``) replayed on
      meta for the shapes, the weights assigned from the file; its parameter count must equal the plan's
      for that layer (``accounting.planned_size`` of the sub-plan);
   f. *forward (pruned)*: the reloaded layers over the same batch (the outputs must be finite);
   g. *free*: the slot back to a fresh full-width meta layer.

   A layer the plan drops is not materialised (nothing of it is kept); a layer it replaces by a linear
   map gets the map fitted on its own synthetic input and output (``surgery.fit_linear_map``).
4. **extrapolation** to all layers (see ``extrapolate``): time is the one-off parts plus the per-layer
   means times the number of layers, and the same with the stages that work on the kept weights fitted
   as affine in each layer's planned size; memory is the largest per-group peak, because nothing stays resident
   between groups (the peak is measured per group by resetting the kernel's high-water mark, and the RSS
   after each group's free is reported beside it).

    python benchmarks/fullsize_hy3_cpu.py --out reports/fullsize/hy3-cpu.md              # 3 layers, one at a time
    python benchmarks/fullsize_hy3_cpu.py --layers 4 --layers-at-once 2 --out /tmp/k2.md   # about 17 GiB at 20b
    python benchmarks/fullsize_hy3_cpu.py --dry-run --out /tmp/hy3-dry.md                 # a tiny config, seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

GIB = 1024**3  # _fullsize.GIB: this module's pure helpers run without benchmarks/ on sys.path
# the HunYuanMoEV1 config of --dry-run: every code path of the real run on a model of 0.3M parameters
TINY_OVERRIDES = {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 32, "num_hidden_layers": 4,
                  "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "num_experts": 8, "moe_topk": 2,
                  "max_position_embeddings": 512}
FULL_WIDTH_STAGES = ("materialise", "forward_full")  # work on the unpruned layer: the same for every layer
KEPT_STAGES = ("surgery", "save", "reload", "forward_pruned", "free")  # work on what the plan keeps
STAGES = FULL_WIDTH_STAGES + KEPT_STAGES


# --------------------------------------------------------------------------------------------
# pure helpers (tests/benchmarks/test_fullsize_hy3_cpu.py)
# --------------------------------------------------------------------------------------------
def select_groups(n_layers: int, n: int, k: int) -> list[list[int]]:
    """``n`` of ``n_layers`` layer indices in groups of ``k`` consecutive layers (the last group may be
    shorter), the groups spread evenly over the depth with the first and the last layer included.

    >>> select_groups(32, 3, 1), select_groups(32, 4, 2), select_groups(4, 3, 2)
    ([[0], [16], [31]], [[0, 1], [30, 31]], [[0, 1], [3]])
    """
    if not 1 <= n <= n_layers:
        raise ValueError(f"--layers {n}: choose 1..{n_layers} (the model has {n_layers} decoder layers)")
    if k < 1:
        raise ValueError(f"--layers-at-once {k}: choose at least 1")
    k = min(k, n)
    sizes = [k] * (n // k) + ([n % k] if n % k else [])
    gaps, spare = len(sizes) - 1, n_layers - n
    groups, start = [], 0
    for g, size in enumerate(sizes):
        groups.append(list(range(start, start + size)))
        if g < gaps:  # share the unprocessed layers between the gaps, the first gaps taking the remainder
            start += size + spare // gaps + (1 if g < spare % gaps else 0)
    return groups


def layer_plan(plan: Any, path: str) -> Any:
    """The part of ``plan`` inside decoder layer ``path`` (``model.layers.7``): the same Plan with only
    the decisions at that path or below it."""
    return dataclasses.replace(plan, decisions=[d for d in plan.decisions if d.path == path or d.path.startswith(path + ".")])


def planned_layer_params(tree: Any, plan: Any, path: str) -> int:
    """Parameters the plan leaves of layer ``path``: its unpruned size less what its sub-plan saves,
    counted by the project's one size arithmetic (``accounting.planned_size``)."""
    from tmpbench.pruning.accounting import planned_size

    return int(tree[path].params - (tree.params - planned_size(tree, layer_plan(plan, path), "params")))


def fit_affine(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares ``y = a + b x``; through the origin (``a = 0``, ``b = sum y / sum x``) when the ``xs``
    do not hold two different values.

    >>> fit_affine([1, 3], [2, 4]), fit_affine([2, 2], [1, 3])
    ((1.0, 1.0), (0.0, 1.0))
    """
    if len(set(xs)) < 2:
        return 0.0, sum(ys) / sum(xs) if sum(xs) else 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def extrapolate(rows: list[dict[str, Any]], planned: list[int], dropped: set[int], once_seconds: float) -> dict[str, Any]:
    """The whole model's processing time from the layers measured (``rows``: one per processed layer that
    is not dropped, ``seconds`` per stage and ``planned_params``), ``planned`` (parameters the plan keeps
    in every layer) and the one-off seconds (meta build, plan, non-layer part).

    * ``mean_x_layers``: each stage's mean over the measured layers times the number of layers the plan
      keeps (dropped layers cost nothing: they are never materialised);
    * ``size_fitted``: the full-width stages as above; each stage that works on the kept weights (surgery,
      save, reload, pruned forward, free) as ``a + b * kept`` fitted over the measured layers
      (:func:`fit_affine`), evaluated at every kept layer's planned size (a negative value counts 0).

    >>> rows = [{"planned_params": 10, "seconds": dict.fromkeys(STAGES, 1.0)}]
    >>> e = extrapolate(rows, [10, 30], set(), 5.0)
    >>> e["mean_x_layers"]["total_s"], e["size_fitted"]["total_s"]
    (19.0, 29.0)
    """
    if not rows:
        raise ValueError("no measured layer to extrapolate from (every processed layer is dropped by the plan)")
    kept = [p for i, p in enumerate(planned) if i not in dropped]
    xs = [r["planned_params"] for r in rows]
    mean = {s: sum(r["seconds"][s] for r in rows) / len(rows) for s in STAGES}
    simple = {s: mean[s] * len(kept) for s in STAGES}
    fitted, lines = {}, {}
    for s in STAGES:
        if s in FULL_WIDTH_STAGES:
            fitted[s] = simple[s]
            continue
        a, b = fit_affine(xs, [r["seconds"][s] for r in rows])
        lines[s] = {"a_s": round(a, 3), "b_s_per_gparam": round(b * 1e9, 3)}
        fitted[s] = sum(max(0.0, a + b * x) for x in kept)
    out: dict[str, Any] = {"layers": len(planned), "layers_kept": len(kept), "measured_layers": len(rows),
                           "once_s": round(once_seconds, 1),
                           "per_layer_mean_s": {s: round(v, 2) for s, v in mean.items()},
                           "per_layer_mean_total_s": round(sum(mean.values()), 1), "fits": lines,
                           "kept_params_measured_mean": sum(xs) / len(xs), "kept_params_all_mean": sum(kept) / max(len(kept), 1)}
    for name, per_stage in (("mean_x_layers", simple), ("size_fitted", fitted)):
        layers_s = sum(per_stage.values())
        out[name] = {"stages_s": {s: round(v, 1) for s, v in per_stage.items()}, "layers_s": round(layers_s, 1),
                     "total_s": round(layers_s + once_seconds, 1)}
    return out


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------
def hy3_entry(dry_run: bool) -> Any:
    """The registered ``hunyuanimage3`` entry, or (``dry_run``) the same entry with the tiny config."""
    from tmpbench.models.spec import parse_spec, resolve_entry

    entry = resolve_entry(parse_spec("hunyuanimage3"))
    if not dry_run:
        return entry
    return dataclasses.replace(entry, name="hunyuanimage3-tiny", extra={**entry.extra, "config_overrides": dict(TINY_OVERRIDES)})


def _params(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Everything but the report: returns the JSON record (see the module docstring). Files go to
    ``args.workdir``, or to a temporary folder removed afterwards, whatever happens."""
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="tmpbench-hy3-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return measure(args, work)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The plan, the non-layer part and the layer groups, with ``work`` holding plan.json and the weights."""
    import torch
    from _fullsize import Memory, materialise  # benchmarks/ is on sys.path (this script's folder)
    from safetensors.torch import load_file, save_file

    from tmpbench.errors import TmpbenchError
    from tmpbench.pruning.hunyuan_tree import DEFAULT_CAPTION_TOKENS, HUNYUAN_VAE_FACTOR, apply_hunyuan_plan, decoder_layers
    from tmpbench.pruning.plan import Plan
    from tmpbench.pruning.runner import plan_model
    from tmpbench.pruning.surgery import fit_linear_map

    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16
    mem = Memory()
    entry = hy3_entry(args.dry_run)
    record: dict[str, Any] = {"model": entry.name, "budget": args.budget, "size": args.size, "threads": args.threads,
                              "layers_at_once": args.layers_at_once, "loadavg_start": list(os.getloadavg())}
    once: dict[str, float] = {}

    t = time.perf_counter()
    model = entry.build_meta()
    # the adapter loads the real model with moe_impl="eager"; one implementation for every layer also keeps the
    # timings comparable (surgery switches a shared config to eager when a cut width breaks grouped_mm's alignment)
    model.config._experts_implementation = "eager"
    once["meta_build"] = time.perf_counter() - t
    prefix, layers = decoder_layers(model)
    layer_cls = type(layers[0])
    n_layers = len(layers)
    groups = select_groups(n_layers, args.layers, args.layers_at_once)

    t = time.perf_counter()
    outcome = plan_model(model, "tmp", args.budget, model_name=entry.name)
    outcome.report.require()
    plan, tree = outcome.plan, outcome.tree
    plan.save(work / "plan.json")
    once["plan"] = time.perf_counter() - t
    paths = [f"{prefix}.{i}" for i in range(n_layers)]
    outside = [d.path for d in plan.decisions if not any(d.path == p or d.path.startswith(p + ".") for p in paths)]
    if outside:
        raise TmpbenchError(f"the plan cuts {outside[:3]} outside the decoder layers; this benchmark replays layer decisions only")
    planned = [planned_layer_params(tree, plan, p) for p in paths]
    policies = [{d.policy for d in layer_plan(plan, p).decisions} for p in paths]
    dropped = {i for i, pol in enumerate(policies) if "drop_block" in pol}
    non_layer_planned = int(tree.params - sum(tree[p].params for p in paths))
    if sum(planned) + non_layer_planned != plan.achieved_params:
        raise TmpbenchError(f"per-layer planned sizes sum to {sum(planned) + non_layer_planned:,}, the plan says {plan.achieved_params:,}")
    layer_params = int(tree[paths[0]].params)
    cfg = model.config
    record.update(
        config={k: getattr(cfg, k) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                                             "head_dim", "num_experts", "moe_topk", "intermediate_size", "vocab_size")},
        params_total=int(tree.params), params_per_layer=layer_params, params_non_layer=non_layer_planned,
        layer_bf16_bytes=2 * layer_params,
        plan={"achieved_params": plan.achieved_params, "budget_check": outcome.report.to_dict()["message"],
              "policies": dict(Counter(d.policy for d in plan.decisions)), "planned_per_layer": planned,
              "dropped": sorted(dropped)},
        groups_layers=groups, experts_implementation=cfg._experts_implementation,
    )

    def meta_layer(i: int) -> Any:
        with torch.device("meta"):
            return layer_cls(cfg, i)

    def reshape_and_load(i: int, sub: Any, state: dict) -> None:
        """Slot ``i`` gets a fresh meta layer, replayed to the sub-plan's shapes, weights assigned from ``state``
        (a linear map's weights come back from the file too)."""
        layers[i] = meta_layer(i).to(dtype)
        maps = {d.path: (state["linear.weight"], state.get("linear.bias")) for d in sub.decisions if d.policy == "linear_replace"}
        apply_hunyuan_plan(model, sub, linear_maps=maps, copy=False)
        layers[i].load_state_dict(state, assign=True, strict=True)

    # ---- the non-layer part (embedding, final norm, LM head), once -------------------------------------
    holder = torch.nn.ModuleDict({name.replace(".", "_"): mod for name, mod in model.named_modules()
                                  if not name.startswith(prefix) and any(True for _ in mod.parameters(recurse=False))})
    mem.reset()
    nl: dict[str, Any] = {"modules": sorted(holder), "planned_params": non_layer_planned}
    t = time.perf_counter()
    holder.to(dtype)
    materialise(holder, dtype, seed=10_000)
    nl["materialise_s"] = time.perf_counter() - t
    t = time.perf_counter()
    save_file({k: v.contiguous() for k, v in holder.state_dict().items()}, str(work / "non-layer.safetensors"))
    holder.to("meta")
    nl["save_s"] = time.perf_counter() - t
    t = time.perf_counter()
    holder.load_state_dict(load_file(str(work / "non-layer.safetensors")), assign=True, strict=True)
    nl["reloaded_params"] = _params(holder)
    nl["equals_plan"] = nl["reloaded_params"] == non_layer_planned
    holder.to("meta")
    nl["reload_s"] = time.perf_counter() - t
    nl["file_bytes"] = (work / "non-layer.safetensors").stat().st_size
    nl["rss_after_free_gib"], nl["peak_gib"] = mem.read()
    once["non_layer"] = nl["materialise_s"] + nl["save_s"] + nl["reload_s"]
    print(f"non-layer part: {nl['reloaded_params']:,} params, {once['non_layer']:.1f} s, peak {nl['peak_gib']:.2f} GiB", flush=True)

    # ---- the decoder layers, K at a time ---------------------------------------------------------------
    rotary = type(model.model.rotary_emb)(config=cfg)  # its inv_freq is a non-persistent buffer, empty on meta
    tokens = (args.size // HUNYUAN_VAE_FACTOR) ** 2 + DEFAULT_CAPTION_TOKENS
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(1, tokens, cfg.hidden_size, generator=gen).to(dtype)
    position_ids = torch.arange(tokens)[None]
    rope = rotary(hidden, position_ids)
    record.update(tokens=tokens, batch=1)
    saved_plan = Plan.load(work / "plan.json")
    rows, group_rows = [], []

    def forward(group: list[int], h: Any, times: dict[int, dict], stage: str, keep_io: set[int] = frozenset()) -> tuple[Any, dict]:
        io = {}
        for i in group:
            if i in dropped:
                continue
            t0 = time.perf_counter()
            with torch.no_grad():
                out = layers[i](h, position_ids=position_ids, position_embeddings=rope)
            times[i][stage] = time.perf_counter() - t0
            if i in keep_io:
                io[i] = (h[0].float(), out[0].float())
            h = out
        return h, io

    for g, group in enumerate(groups):
        mem.reset()
        live = [i for i in group if i not in dropped]
        linear = {i for i in live if "linear_replace" in policies[i]}
        order = sorted(live, key=lambda i: i in linear)  # the tree refuses a linear map already in place: those last
        times: dict[int, dict] = {i: {} for i in group}
        info: dict[int, dict] = {i: {} for i in group}
        for i in live:
            t0 = time.perf_counter()
            layers[i].to(dtype)  # still meta: allocation below happens once, in bf16
            materialise(layers[i], dtype, seed=i)
            times[i]["materialise"] = time.perf_counter() - t0
        _, io = forward(group, hidden, times, "forward_full", keep_io=linear)
        for i in order:
            t0 = time.perf_counter()
            sub = layer_plan(plan, paths[i])
            maps = {paths[i]: fit_linear_map(*io[i])} if i in linear else None
            with torch.no_grad():
                apply_hunyuan_plan(model, sub, linear_maps=maps, copy=False)
            times[i]["surgery"] = time.perf_counter() - t0
            info[i]["surgery_params"] = _params(layers[i])
        for i in order:
            t0 = time.perf_counter()
            file = work / f"{paths[i]}.safetensors"
            save_file({k: v.contiguous() for k, v in layers[i].state_dict().items()}, str(file))
            layers[i] = meta_layer(i)
            times[i]["save"] = time.perf_counter() - t0
            info[i]["file_bytes"] = file.stat().st_size
        for i in order:
            t0 = time.perf_counter()
            # no name keeps the loaded tensors: the slot is their only owner, so freeing it frees them
            reshape_and_load(i, layer_plan(saved_plan, paths[i]), load_file(str(work / f"{paths[i]}.safetensors")))
            times[i]["reload"] = time.perf_counter() - t0
            info[i]["reloaded_params"] = _params(layers[i])
        out, _ = forward(group, hidden, times, "forward_pruned")
        finite = bool(torch.isfinite(out.float()).all())
        del out, io
        for i in live:
            t0 = time.perf_counter()
            layers[i] = meta_layer(i)
            times[i]["free"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        gc.collect()  # a safety net (reference counting has freed the tensors already), counted in the free stage
        gc_s = time.perf_counter() - t0
        for i in live:
            times[i]["free"] += gc_s / len(live)
        rss, peak = mem.read()
        for i in group:
            row = {"layer": i, "group": g, "planned_params": planned[i], "decisions": sorted(policies[i]),
                   "kept_experts": "linear map" if i in linear else next(
                       (len(d.keep or d.groups) for d in layer_plan(plan, paths[i]).decisions
                        if d.policy in ("prune_experts", "merge_experts")), cfg.num_experts)}
            if i in dropped:
                row.update(dropped=True, reloaded_params=0, equals_plan=planned[i] == 0)
            else:
                row.update(info[i], seconds={s: round(times[i][s], 3) for s in STAGES},
                           equals_plan=info[i]["surgery_params"] == info[i]["reloaded_params"] == planned[i], finite=finite)
            rows.append(row)
            print(f"layer {i}: " + (", ".join(f"{s} {times[i][s]:.1f} s" for s in STAGES) if i not in dropped else "dropped")
                  + f"; {planned[i]:,} params, equals plan {row['equals_plan']}", flush=True)
        group_rows.append({"group": g, "layers": group, "peak_gib": round(peak, 2), "rss_after_free_gib": round(rss, 2),
                           "run_peak_gib": round(mem.run_peak, 2), "gc_s": round(gc_s, 2)})
        print(f"group {g} {group}: peak {peak:.2f} GiB, {rss:.2f} GiB after free, run peak {mem.run_peak:.2f} GiB", flush=True)

    once = {k: round(v, 2) for k, v in once.items()}
    measured = [r for r in rows if not r.get("dropped")]
    record.update(
        once_s=once, non_layer={k: (round(v, 2) if isinstance(v, float) else v) for k, v in nl.items()}, rows=rows,
        groups=group_rows, run_peak_gib=round(mem.run_peak, 2), per_group_peak=mem.resettable,
        all_equal_plan=all(r["equals_plan"] for r in rows) and nl["equals_plan"], all_finite=all(r["finite"] for r in measured),
        extrapolation=extrapolate(measured, planned, dropped, sum(once.values())), loadavg_end=list(os.getloadavg()),
        workdir=str(work) if args.workdir else None,
    )
    ex = record["extrapolation"]
    ex["peak_gib"] = max([g["peak_gib"] for g in group_rows] + [round(nl["peak_gib"], 2)])
    return record


# --------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------
def _h(seconds: float) -> str:
    return f"{seconds:,.0f} s ({seconds / 60:.1f} min)" if seconds >= 60 else f"{seconds:.1f} s"


def markdown(rec: dict[str, Any]) -> list[str]:
    """The report's lines: the per-layer table, memory per group, the one-off parts and the extrapolation."""
    ex, cfg = rec["extrapolation"], rec["config"]
    lines = [
        f"# {rec['model']} at full width on CPU, {rec['layers_at_once']} decoder layer(s) at a time",
        "",
        f"Config: hidden {cfg['hidden_size']}, {cfg['num_hidden_layers']} layers, {cfg['num_attention_heads']}/"
        f"{cfg['num_key_value_heads']} query/KV heads, {cfg['num_experts']} experts of width {cfg['intermediate_size']} "
        f"(top-{cfg['moe_topk']}) + 1 shared; {rec['params_total']:,} params, {rec['params_per_layer']:,} per decoder layer "
        f"({rec['layer_bf16_bytes'] / 1e9:.2f} GB = {rec['layer_bf16_bytes'] / GIB:.2f} GiB in bf16), "
        f"{rec['params_non_layer']:,} outside them.",
        f"Plan: TMP data-free proxy at {rec['budget']} on the meta model: {rec['plan']['budget_check']}; decisions "
        f"{rec['plan']['policies']}. Forward batch: 1 x {rec['tokens']} tokens (the unit tree's count at {rec['size']} px), "
        f"bf16, experts `{rec['experts_implementation']}`, {rec['threads']} thread(s); load average "
        f"{rec['loadavg_start'][0]:.1f} at the start, {rec['loadavg_end'][0]:.1f} at the end.",
        "",
        f"Layers processed: {rec['groups_layers']} ({len(rec['groups_layers'])} group(s) of up to {rec['layers_at_once']} "
        "consecutive layers, spread over the depth with the first and the last layer included). Per group, stage by stage: "
        "*materialise* (the layer's meta tensors allocated in bf16 and filled: normal std 0.02, norms 1), *forward full* "
        "(the group's layers in order over the batch), *surgery* (the plan's decisions inside the layer replayed in place by "
        "the layout's `apply_hunyuan_plan(copy=False)`), *save* (the layer's state dict as safetensors; the layer goes back "
        "to meta), *reload* (a fresh meta layer replayed to the sub-plan read back from plan.json, weights assigned from "
        "the file; safetensors maps the file, so its pages are read by the pruned forward, not in this stage), *forward "
        "pruned*, *free* (the slot back to a full-width meta layer). *reloaded = plan*: the parameter count after surgery and "
        "after reload both equal the plan's for that layer (`accounting.planned_size` of the layer's sub-plan); the "
        "per-layer counts and the non-layer part add up to the plan's total.",
        "",
        "Seconds per stage per layer (wall):",
        "",
        "| layer | kept experts | planned params | materialise | forward full | surgery | save | reload | forward pruned | free "
        "| total | reloaded = plan |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rec["rows"]:
        if r.get("dropped"):
            lines.append(f"| {r['layer']} | dropped | 0 | - | - | - | - | - | - | - | - | {r['equals_plan']} |")
            continue
        s = r["seconds"]
        lines.append(f"| {r['layer']} | {r['kept_experts']} | {r['planned_params']:,} | "
                     + " | ".join(f"{s[k]:.1f}" for k in STAGES) + f" | {sum(s.values()):.1f} | {r['equals_plan']} |")
    m = ex["per_layer_mean_s"]
    lines.append("| mean | | | " + " | ".join(f"{m[k]:.1f}" for k in STAGES) + f" | {ex['per_layer_mean_total_s']:.1f} | |")
    what = "peak RSS in the group" if rec["per_group_peak"] else "process peak RSS so far (no per-group reset here)"
    lines += ["", "Memory per group (GiB; the group's peak is the kernel's high-water mark, reset at the group's start):", "",
              f"| group | layers | {what} | RSS after free | process peak so far |", "|---|---|---|---|---|"]
    lines += [f"| {g['group']} | {g['layers']} | {g['peak_gib']:.2f} | {g['rss_after_free_gib']:.2f} | {g['run_peak_gib']:.2f} |"
              for g in rec["groups"]]
    nl, once = rec["non_layer"], rec["once_s"]
    lines += ["", "One-off parts (measured, not extrapolated):", "", "| part | seconds | notes |", "|---|---|---|",
              f"| meta build | {once['meta_build']:.1f} | whole model on the meta device |",
              f"| plan | {once['plan']:.1f} | TMP data-free proxy on meta, landed {rec['plan']['achieved_params']:,} params |",
              f"| non-layer part | {once['non_layer']:.1f} | {', '.join(nl['modules'])}: materialise {nl['materialise_s']:.1f}, "
              f"save {nl['save_s']:.1f}, reload {nl['reload_s']:.1f} (mapped, not read: no forward runs it); "
              f"{nl['reloaded_params']:,} params, equals plan "
              f"{nl['equals_plan']}; peak {nl['peak_gib']:.2f} GiB |"]
    mx, sc = ex["mean_x_layers"], ex["size_fitted"]
    lines += ["", f"Extrapolation to all {ex['layers']} layers ({ex['layers_kept']} kept by the plan) from "
              f"{ex['measured_layers']} measured:",
              "", "| | mean x layers | size-fitted |", "|---|---|---|"]
    for s in STAGES:
        lines.append(f"| {s} | {_h(mx['stages_s'][s])} | {_h(sc['stages_s'][s])} |")
    lines += [f"| all layers | {_h(mx['layers_s'])} | {_h(sc['layers_s'])} |",
              f"| + one-off parts | {_h(ex['once_s'])} | {_h(ex['once_s'])} |",
              f"| **whole model** | **{_h(mx['total_s'])}** | **{_h(sc['total_s'])}** |",
              f"| peak RSS | {ex['peak_gib']:.2f} GiB | {ex['peak_gib']:.2f} GiB |",
              "",
              "How extrapolated: *mean x layers* multiplies each stage's mean over the measured layers by the number of "
              "layers the plan keeps (a dropped layer is never materialised). *Size-fitted* keeps that for the full-width "
              "stages (materialise, full-width forward: every layer has the same shapes before pruning) and fits each stage "
              "that works on the kept weights (surgery, save, reload, pruned forward, free) as seconds = a + b x kept params "
              "over the measured layers, then sums it over every layer's planned size (the measured layers keep "
              f"{ex['kept_params_measured_mean']:,.0f} params on average, all kept layers {ex['kept_params_all_mean']:,.0f}; "
              "where the measured layers keep more than the average layer, *mean x layers* is the upper figure). "
              "Both add the one-off parts as measured. Assumptions: every layer has the measured layers' shapes (true "
              "here); a kept-weight stage's time is affine in the parameters the layer keeps (the forward's routing makes "
              "it depend on the tokens per expert too); "
              "the machine's load stays as it was (the load averages above). Memory: the peak is that of "
              f"{rec['layers_at_once']} layer(s) at once plus the surgery's transient copies, independent of the number of "
              "layers, because nothing stays resident between groups (the RSS after each free is back to the baseline and "
              "each group's own peak repeats the first's); the whole run's peak is the largest group's. It is "
              f"{ex['peak_gib'] / (rec['layers_at_once'] * rec['layer_bf16_bytes'] / GIB):.1f}x the bf16 size of "
              f"{rec['layers_at_once']} layer(s): the surgery cuts the routed experts' channels in all experts before it drops "
              "experts, and `MoEBlockView.keep_intermediate` / `keep_experts` gather the kept rows into a new tensor and "
              "clone it while the old tensor is still held. One more layer at once adds one full-width layer "
              f"({rec['layer_bf16_bytes'] / GIB:.2f} GiB) while another layer's surgery runs (arithmetic, not measured here).",
              ]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", default=None, help="TMP budget (default 20b; 50%% with --dry-run)")
    ap.add_argument("--layers", type=int, default=3, help="decoder layers to process (default 3)")
    ap.add_argument("--layers-at-once", type=int, default=1, help="layers materialised together (default 1)")
    ap.add_argument("--size", type=int, default=64, help="image side the forward's token count stands for (default 64 px)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dry-run", action="store_true", help="a tiny config of the same layout (0.3M params): every path, seconds")
    ap.add_argument("--workdir", type=Path, default=None, help="keep plan.json and the per-layer weights here (default: a temp dir)")
    ap.add_argument("--out", type=Path, help="write the Markdown report and its JSON record here")
    args = ap.parse_args(argv)
    args.budget = args.budget or ("50%" if args.dry_run else "20b")
    from tmpbench.errors import TmpbenchError

    if args.size <= 0 or args.size % 16:
        ap.error(f"--size {args.size}: choose a positive multiple of 16 (the VAE factor)")
    try:
        record = run(args)
    except (ValueError, TmpbenchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    lines = markdown(record)
    print("\n".join(lines), flush=True)
    if args.out:
        from _record import append_table  # benchmarks/_record.py (this folder is on sys.path)

        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("")
        append_table(args.out, lines, [record], threads=args.threads, argv=argv)
    return 0 if record["all_equal_plan"] and record["all_finite"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
