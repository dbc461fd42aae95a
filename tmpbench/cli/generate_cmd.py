"""``tmpbench generate``: a model's images for a suite, in the suite's layout, for `tmpbench score`.

ShapesWorld / GenEval / edit suites: ``DIR/<index:05d>/metadata.jsonl`` + ``samples/<n:04d>.png``;
OneIG: ``DIR/<category>/<model>/<id>.webp`` 2x2 grids. Resumable (existing items are kept) and
shardable with ``accelerate launch -m tmpbench generate ...``.
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate(
        model: str = typer.Option(..., "--model", help="Model spec: NAME or a directory (unpruned, or a pruned model's folder)."),
        suite: str = typer.Option(..., "--suite", help="Suite name (`tmpbench suites list`) or a suite YAML."),
        out: Path = typer.Option(..., "--out", help="Output folder (the suite's layout)."),
        limit: int = typer.Option(None, "--limit", help="Generate the first N items (round-robin over categories)."),
        seeds: int = typer.Option(None, "--seeds", help="Samples per prompt (default 1; OneIG 4)."),
        batch_size: int = typer.Option(8, "--batch-size", help="Images per generator call."),
        steps: int = typer.Option(None, "--steps", help="Sampler steps (default: the model's)."),
        guidance: float = typer.Option(None, "--guidance", help="Guidance scale (default: the model's)."),
        size: int = typer.Option(None, "--size", help="Image side in pixels (default: the model's)."),
        model_path: str = typer.Option(None, "--model-path", help="Local weights directory for the model."),
        source: str = typer.Option(None, "--source", help="The suite's source file or folder, if it needs one."),
        device: str = typer.Option(None, "--device", help="Torch device (default: cuda if available, else cpu)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        """Generate a suite's images (resumable) for `tmpbench score --images DIR`."""
        from tmpbench.run.pipeline import RunConfig, generate_only

        cfg = RunConfig(
            suite=suite, model=model, out=out, seeds=seeds, limit=limit, batch_size=batch_size, steps=steps,
            guidance=guidance, size=size, model_path=model_path, source=source, device=device, progress=not quiet,
        )
        info = generate_only(cfg)
        if info["is_main"]:
            typer.echo(
                f"{info['items']} items x {info['seeds']} seeds of {info['suite']} in {info['out']} ({info['layout']} layout): "
                f"{info['generated']} generated, {info['resumed']} resumed by this process in {info['seconds']:.1f}s"
            )
