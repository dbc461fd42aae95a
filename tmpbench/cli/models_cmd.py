"""``tmpbench models list|show``: the registered models and what a model spec means.

``models show SPEC`` prints ``name``, ``family`` and ``params`` (the denoiser's parameters, see
:mod:`tmpbench.models.counting`); for a pruned spec such as ``zimage-4b`` or ``tiny-dit-50%`` it
adds the target size and the pruner. Without ``--meta`` the registered nominal size is reported and
nothing is built; ``--meta`` builds the full-size denoiser on the meta device and counts it (and
its FLOPs per denoiser forward at the model's default resolution). A local directory is loaded and
counted.
"""

from __future__ import annotations

import json
import time
from typing import Any

import typer

from tmpbench.errors import TmpbenchError


def human_count(n: int | float | None) -> str:
    """``6154908736 -> '6.15B'``; ``1_900_000 -> '1.90M'``."""
    if n is None:
        return "-"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def list_models() -> list[dict[str, Any]]:
    """One summary per registered model (imports each entry's module, builds nothing)."""
    from tmpbench.catalog import MODELS
    from tmpbench.models.spec import parse_spec, resolve_entry

    return [resolve_entry(parse_spec(name)).as_dict() for name in MODELS.names()]


def describe(spec_text: str, meta: bool = False, pruner: str | None = None) -> dict[str, Any]:
    """What ``models show`` reports for a spec, as a JSON-friendly dict."""
    from tmpbench.models.spec import parse_spec, resolve_entry

    spec = parse_spec(spec_text, pruner=pruner)
    if pruner is not None:
        from tmpbench.catalog import PRUNERS

        PRUNERS.get(pruner)  # unknown name -> "did you mean"
    entry = resolve_entry(spec)
    info: dict[str, Any] = {
        "name": spec_text,
        "base": entry.name,
        "family": entry.family,
        "source": spec.path or entry.source,
        "params": entry.nominal_params,
        "params_counted": "nominal",  # nominal | meta | loaded
        "params_of": "denoiser",
        "supports_edit": entry.supports_edit,
        "default_size": entry.default_size,
        "default_steps": entry.default_steps,
        "default_guidance": entry.default_guidance,
    }
    if spec.path is not None:
        if meta:
            raise TmpbenchError(f"--meta builds a registered model; {spec_text!r} is a directory (drop --meta)")
        from tmpbench.loading import load_model
        from tmpbench.models.counting import count_params

        info["params"] = count_params(load_model(spec_text))
        info["params_counted"] = "loaded"
    elif meta:
        from tmpbench.models.counting import build_meta, count_flops, count_params

        start = time.perf_counter()
        module = build_meta(entry.name)
        info["params"] = count_params(module)
        info["params_counted"] = "meta"
        try:
            info["flops_per_forward"] = count_flops(module, entry.default_size)
        except TmpbenchError:
            info["flops_per_forward"] = None  # family without a FLOP profile
        info["meta_seconds"] = round(time.perf_counter() - start, 2)
    if spec.budget is not None:
        target = spec.target_params(info["params"])
        info.update(
            budget=spec.budget,
            pruner=spec.pruner,
            target_params=target,
            removed_fraction=round(1.0 - target / info["params"], 4),
        )
    return info


def format_info(info: dict[str, Any]) -> str:
    lines = [
        f"name:     {info['name']}",
        f"family:   {info['family']}",
        f"source:   {info['source']}",
        f"params:   {info['params']:,} ({human_count(info['params'])}, {info['params_counted']}, {info['params_of']})",
    ]
    if "target_params" in info:
        lines.append(
            f"target:   {info['target_params']:,} ({human_count(info['target_params'])}, "
            f"{info['removed_fraction']:.1%} removed) by pruner {info['pruner']}"
        )
    if info.get("flops_per_forward"):
        lines.append(f"flops:    {human_count(info['flops_per_forward'])} per denoiser forward at {info['default_size']} px")
    lines.append(
        f"defaults: size {info['default_size']}, steps {info['default_steps']}, guidance {info['default_guidance']}"
        f"{', edits' if info['supports_edit'] else ''}"
    )
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    models_app = typer.Typer(help="Registered models and model specs (NAME[-SIZE], e.g. zimage-4b, tiny-dit-50%).",
                             no_args_is_help=True)
    app.add_typer(models_app, name="models")

    @models_app.command("list")
    def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List registered models: name, family, nominal denoiser params, source."""
        rows = list_models()
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        width = max(len(r["name"]) for r in rows) if rows else 4
        for r in rows:
            edit = "t2i+edit" if r["supports_edit"] else "t2i"
            typer.echo(
                f"{r['name']:<{width}}  {r['family']:<14} {human_count(r['nominal_params']):>8}  {edit:<8}  {r['source']}"
            )

    @models_app.command("show")
    def show_cmd(
        spec: str = typer.Argument(..., help="Model spec: NAME[-SIZE] (zimage, zimage-4b, tiny-dit-50%) or a directory."),
        meta: bool = typer.Option(False, "--meta", help="Build the full-size denoiser on the meta device and count it."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        pruner: str | None = typer.Option(None, "--pruner", help="Pruner for a spec with a size (default: tmp)."),
    ) -> None:
        """Show a model spec: name, family, params (and the target size for a pruned spec)."""
        info = describe(spec, meta=meta, pruner=pruner)
        typer.echo(json.dumps(info, indent=2) if as_json else format_info(info))
