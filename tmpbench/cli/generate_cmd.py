"""``tmpbench generate``: a model's images for a suite, in the suite's layout, for `tmpbench score`.

ShapesWorld / GenEval / edit suites: ``DIR/<index:05d>/metadata.jsonl`` + ``samples/<n:04d>.png``;
OneIG: ``DIR/<category>/<model>/<id>.webp`` 2x2 grids. Resumable (existing items are kept) and
shardable with ``accelerate launch -m tmpbench generate ...``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from tmpbench.cli import _options as opt


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate(
        model: str = typer.Option(..., "--model", help="Model spec: NAME or a directory (unpruned, or a pruned model's folder)."),
        suite: str = opt.suite(),
        out: Path = typer.Option(..., "--out", help="Output folder (the suite's layout)."),
        limit: int = typer.Option(None, "--limit", help="Generate the first N items (round-robin over categories)."),
        seeds: int = opt.seeds(),
        batch_size: int | None = opt.batch_size(),
        steps: int = opt.steps(),
        guidance: float = opt.guidance(),
        size: int = opt.size(),
        model_path: str = opt.model_path(),
        source: str = opt.source(),
        image_root: str = opt.image_root(),
        device: str = opt.device(),
        offload: str = opt.offload(),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        """Generate a suite's images (resumable) for `tmpbench score --images DIR`."""
        from tmpbench.run.pipeline import RunConfig, generate_only

        # every item, as `tmpbench score --images` and `suites render` read the suite (splits apply to run and sweep)
        cfg = RunConfig(
            suite=suite, model=model, out=out, seeds=seeds, limit=limit, split="all", batch_size=batch_size, steps=steps,
            guidance=guidance, size=size, model_path=model_path, source=source, image_root=image_root, device=device, offload=offload,
            progress=not quiet,
        )
        info = generate_only(cfg)
        if info["is_main"]:
            typer.echo(
                f"{info['items']} items x {info['seeds']} seeds of {info['suite']} in {info['out']} ({info['layout']} layout): "
                f"{info['generated']} generated, {info['resumed']} resumed by this process in {info['seconds']:.1f}s"
            )
