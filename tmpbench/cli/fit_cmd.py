"""``tmpbench fit --model SPEC [--plan DIR] --gpu GPU --size PX [--json]``: predicted peak VRAM of one
generation, broken down (weights by dtype, activations, KV cache, text encoder, VAE), with a verdict
per offload strategy (none, model, group, expert) and the cheapest one that fits. The arithmetic is
:mod:`tmpbench.models.memory`, the modules it reads come from :mod:`tmpbench.fit`.
"""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    @app.command("fit")
    def fit_cmd(
        model: str = typer.Option(..., "--model", help="Model spec: NAME, NAME-SIZE (zimage-4b) or a pruned folder."),
        gpu: str = typer.Option(..., "--gpu", help="rtx4090, a100-40g, a100-80g or h100."),
        size: int = typer.Option(1024, "--size", help="Image side in pixels."),
        plan: str | None = typer.Option(None, "--plan", help="A pruned folder (`tmpbench prune --out DIR`) to apply."),
        pruner: str | None = typer.Option(None, "--pruner", help="Pruner for a spec with a size (default: tmp, data-free)."),
        dtype: str = typer.Option("bf16", "--dtype", help="Weight dtype of meta-built models: bf16, fp16 or fp32."),
        load: bool = typer.Option(False, "--load", help="Load the real modules and count them as loaded (no meta build)."),
        guidance: float | None = typer.Option(None, "--guidance", help="Guidance scale (above 1: CFG batch of 2)."),
        steps: int | None = typer.Option(None, "--steps", help="Denoising steps (default: the model's)."),
        attention: str = typer.Option("sdpa", "--attention", help="sdpa (no T x T scores) or eager."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Predict peak VRAM of one generation and which offload strategy fits a GPU."""
        from tmpbench.fit import fit_report, format_report

        report = fit_report(model, gpu, size, plan_dir=plan, pruner=pruner, dtype=dtype, load=load,
                            guidance=guidance, steps=steps, attention=attention)
        typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))
