"""``tmpbench pruners list``, ``tmpbench tree``, ``tmpbench plan`` and ``tmpbench prune``.

* ``pruners list [--json]``: registered pruners, the model families they accept, whether they use
  calibration data.
* ``tree --model SPEC [--depth N] [--meta] [--size PX] [--json]``: the unit tree (model > stage >
  block > component > unit group) with parameters, FLOPs, policies and constraints.
* ``plan --model SPEC --pruner P --budget B [--meta] [--json] [--set key=value ...]``: the Plan,
  without cutting anything. ``--meta`` plans the full-size model on the meta device with
  data-free proxies. The JSON carries ``original_params``, ``achieved_params``, ``requested`` (the
  budget text and its target), ``budget_check`` and the per-node ``decisions``.
* ``prune --model SPEC --pruner P --budget B --out DIR [--recover-steps N] [--calib-prompts N]``:
  plan, cut, check the budget, recover by distillation and write a loadable folder.

Every user error (impossible budget, unknown pruner, a policy the architecture does not admit)
is one line and exit code 2 (see :func:`tmpbench.cli.main`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import typer

from tmpbench.cli import _options as opt
from tmpbench.errors import TmpbenchError


def parse_settings(items: list[str] | None) -> dict[str, Any]:
    """``["tree_depth=2", "policy_mix=[\\"drop_block\\"]"]`` -> dict; values are JSON when they parse."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TmpbenchError(f"--set {item!r} must look like key=value, e.g. --set tree_depth=2")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _denoiser(spec: str, meta: bool, offload_folder: str | None = None) -> tuple[Any, Any, str]:
    """(denoiser, generator or None, model name) for a spec (its blocks on disk under ``offload_folder``)."""
    from tmpbench.models.spec import parse_spec

    parsed = parse_spec(spec)
    if parsed.budget is not None:
        raise TmpbenchError(f"--model {spec!r} already names a size; give the base model and --budget {parsed.budget}")
    if meta:
        from tmpbench.models.counting import build_meta

        return build_meta(spec), None, parsed.base
    from tmpbench.loading import load_model

    gen = load_model(spec, offload_folder=offload_folder)
    return gen.denoiser, gen, parsed.base


def register(app: typer.Typer) -> None:
    pruners_app = typer.Typer(help="Registered pruners (TMP and baselines).", no_args_is_help=True)
    app.add_typer(pruners_app, name="pruners")

    @pruners_app.command("list")
    def pruners_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List pruners: name, model families, calibration use."""
        from tmpbench.pruning.factory import pruner_list

        rows = pruner_list()
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        if not rows:
            typer.echo("no pruners registered")
        width = max((len(r["name"]) for r in rows), default=4)
        for r in rows:
            fam = ",".join(r["families"]) or "-"
            calib = "calibration" if r["needs_calibration"] else "data-free"
            typer.echo(f"{r['name']:<{width}}  {fam:<8} {calib:<12} {r['description']}")

    @app.command("tree")
    def tree_cmd(
        model: str = typer.Option(..., "--model", help="Model spec (zimage, hunyuanimage3, tiny-dit) or a directory."),
        depth: int = typer.Option(2, "--depth", help="Print down to this level: 0 model, 1 stage, 2 block, 3 component, 4 unit."),
        meta: bool = typer.Option(False, "--meta", help="Build the full-size model on the meta device (no weights)."),
        size: int | None = typer.Option(None, "--size", help="Image side in pixels the FLOPs are counted at."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Print the unit tree of a model: params, FLOPs, admitted policies and constraints per node."""
        from tmpbench.pruning.families import unit_tree
        from tmpbench.pruning.tree import format_tree

        if not 0 <= depth <= 4:
            raise TmpbenchError(f"--depth {depth} must be in 0..4 (0 model, 1 stage, 2 block, 3 component, 4 unit)")
        denoiser, _, _ = _denoiser(model, meta)
        tree = unit_tree(denoiser, size=size)
        typer.echo(json.dumps(tree.to_dict(depth), indent=2) if as_json else format_tree(tree, depth=depth))

    def _print_estimate(model: str, pruner: str, budget: str, meta: bool, settings: dict, prompts: int, seed: int,
                        as_json: bool, mix: Any = None) -> None:
        from tmpbench.models.spec import parse_spec, resolve_entry
        from tmpbench.pruning.estimate import estimable, estimate_plan
        from tmpbench.pruning.recipes import default_calibration

        estimable(pruner, settings, seed)  # before loading anything
        entry = resolve_entry(parse_spec(model))
        base = default_calibration(entry.name)
        spec = dataclasses.replace(base, n_prompts=prompts, mix=mix if mix is not None else base.mix)
        denoiser, _, _ = _denoiser(model, meta)
        est = estimate_plan(denoiser, pruner, budget, n_prompts=prompts, steps=int(entry.default_steps),
                            size=int(entry.default_size), guidance=float(entry.default_guidance),
                            pruner_settings=settings, seed=seed, tasks=spec.counts, batched=entry.batched_calls,
                            cfg_batch=entry.cfg_batch)
        est["model"] = model
        if as_json:
            typer.echo(json.dumps(est, indent=2))
            return
        screened = f" (probes on {est['screen_inputs']})" if est["screen_inputs"] < est["calib_inputs"] else ""
        typer.echo(f"{model} {pruner} --budget {budget}: {est['evaluations']} evaluations on {est['calib_inputs']} inputs"
                   f" of {est['samples_per_call']:g} sample(s) each{screened}, {est['forward_equivalents']:,.0f} "
                   f"forward-equivalents at most ({est['calibration_forwards']} "
                   f"sampling the calibration; the search itself at most {est['search_forward_equivalents']:,.0f}, or "
                   f"{est['search_forward_equivalents_low']:,.0f} when its refine pass meets the first pass's states again) "
                   f"at {est['calibration_size']} px, {est['flops']:.3g} FLOPs")
        for g, h in est["hours"].items():
            typer.echo(f"  {est['gpus'][g]}: {h * 60:,.1f} min at {est['mfu_assumed']:.0%} MFU")

    @app.command("plan")
    def plan_cmd(
        model: str = typer.Option(..., "--model", help="Model spec or directory."),
        pruner: str = typer.Option(..., "--pruner", help="Pruner name (`tmpbench pruners list`)."),
        budget: str = typer.Option(..., "--budget", help="Budget: 4b, 20b, 33% (share removed), flops@1024:50%."),
        meta: bool = typer.Option(False, "--meta", help="Plan the full-size model on the meta device (data-free proxies)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        settings: list[str] = typer.Option([], "--set", help="Pruner setting key=value (JSON values), repeatable."),
        calib_prompts: int = typer.Option(8, "--calib-prompts", help="Calibration prompts (loaded models, pruners that use data)."),
        calibration_mix: str = opt.calibration_mix(),
        calib_draw: int = opt.calib_draw(),
        seed: int = typer.Option(0, "--seed", help="Pruner seed."),
        estimate: bool = typer.Option(False, "--estimate", help="Print what the search will cost (evaluations, "
                                      "forward-equivalents, FLOPs, projected GPU hours) without planning."),
        offload_folder: str | None = typer.Option(None, "--offload-folder", help="Keep the denoiser's blocks on disk "
                                                  "in DIR while planning (accelerate's disk offload): memory holds one "
                                                  "block at a time. Plans are the same as in memory."),
        quiet: bool = opt.quiet_output(),
    ) -> None:
        """Plan pruning under a budget without cutting: decisions, achieved size and the budget check."""
        from tmpbench.pruning.factory import make_pruner
        from tmpbench.pruning.recipes import default_calibration, model_defaults, parse_mix
        from tmpbench.pruning.runner import plan_model

        pruner_settings = parse_settings(settings)
        mix = parse_mix(calibration_mix) if calibration_mix is not None else None
        if offload_folder is not None and (meta or estimate):
            raise TmpbenchError("--offload-folder loads weights; --meta and --estimate load none")
        if estimate:
            _print_estimate(model, pruner, budget, meta, pruner_settings, calib_prompts, seed, as_json, mix)
            return
        denoiser, gen, name = _denoiser(model, meta, offload_folder)
        calibration = None
        if gen is not None and getattr(make_pruner(pruner, seed, pruner_settings), "needs_calibration", False):
            base = default_calibration(name)
            spec = dataclasses.replace(base, n_prompts=calib_prompts, mix=mix if mix is not None else base.mix,
                                       draw=calib_draw)
            spec = spec.resolved(*model_defaults(gen))
            calibration = spec.collect(gen)
        outcome = plan_model(denoiser, pruner, budget, pruner_settings=pruner_settings, calibration=calibration,
                             seed=seed, model_name=name, progress=not quiet)
        outcome.report.require()
        if as_json:
            data = outcome.to_dict()
            data["meta"] = meta
            data["data_free"] = calibration is None
            typer.echo(json.dumps(data, indent=2, default=str))
            return
        typer.echo(outcome.plan.summary())
        typer.echo(outcome.report.message)

    @app.command("prune")
    def prune_cmd(
        model: str = typer.Option(..., "--model", help="Model spec or directory."),
        pruner: str = typer.Option(..., "--pruner", help="Pruner name (`tmpbench pruners list`)."),
        budget: str = typer.Option(..., "--budget", help="Budget: 4b, 33% (share removed), flops@1024:50%."),
        out: str = typer.Option(..., "--out", help="Folder to write the pruned model to (must not exist or be empty)."),
        recover_steps: int = typer.Option(0, "--recover-steps", help="Distillation steps after pruning (0: none)."),
        calib_prompts: int = typer.Option(8, "--calib-prompts", help="Calibration prompts drawn from the suite."),
        calib_suite: str | None = typer.Option(None, "--calib-suite",
                                               help="Calibration suite (default shapes-t2i for ShapesWorld models)."),
        calibration_mix: str = opt.calibration_mix(),
        calib_draw: int = opt.calib_draw(),
        lr: float = typer.Option(1e-4, "--lr", help="Recovery learning rate."),
        settings: list[str] = typer.Option([], "--set", help="Pruner setting key=value (JSON values), repeatable."),
        seed: int = typer.Option(0, "--seed", help="Pruner and recovery seed."),
        offload_folder: str | None = typer.Option(None, "--offload-folder", help="Keep the denoiser's blocks on disk "
                                                  "in DIR (accelerate's disk offload): the search runs on them there, "
                                                  "and the surgery reads one kept block at a time into the pruned model."),
        quiet: bool = opt.quiet_output(),
    ) -> None:
        """Prune a model to a budget, optionally recover it, and save it as a loadable folder."""

        from tmpbench.preflight import check_output_dir
        from tmpbench.pruning.io import save_pruned
        from tmpbench.pruning.recipes import RecoveryRecipe, default_calibration, parse_mix
        from tmpbench.pruning.runner import prune_generator

        target = check_output_dir(out)
        if target.exists() and any(target.iterdir()):
            raise TmpbenchError(f"--out {out!r} exists and is not empty; pick a new folder")
        mix = parse_mix(calibration_mix) if calibration_mix is not None else None
        denoiser, gen, name = _denoiser(model, meta=False, offload_folder=offload_folder)
        base = default_calibration(name)
        spec = dataclasses.replace(base, suite=calib_suite or base.suite, n_prompts=calib_prompts,
                                   mix=mix if mix is not None else base.mix, draw=calib_draw)
        result = prune_generator(
            gen, pruner, budget, pruner_settings=parse_settings(settings),
            calibration=spec,
            recovery=RecoveryRecipe(steps=recover_steps, lr=lr, seed=seed), seed=seed, progress=not quiet,
        )
        save_pruned(result, target, spec_text=model)
        typer.echo(result.budget_report.message)
        typer.echo(f"wrote {target} ({result.achieved_params:,} of {result.original_params:,} params, "
                   f"{len(result.plan.decisions)} decisions)")
