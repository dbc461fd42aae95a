"""``tmpbench train-reference``: train (or resume) a ShapesWorld reference model and export it."""

from __future__ import annotations

from pathlib import Path

import typer

from tmpbench.errors import TmpbenchError


def train_reference(
    model: str = typer.Argument(
        ..., help="Reference model to train (a registered model whose entry records an architecture: tiny-dit, tiny-moe, tiny-hy3)."
    ),
    steps: int = typer.Option(None, help="Total optimisation steps (default: the recipe's)."),
    work_dir: Path = typer.Option(Path(".cache/train"), help="Checkpoints go to WORK_DIR/MODEL; an existing checkpoint is resumed."),
    out: Path = typer.Option(None, help="Export folder (default: tmpbench/assets/MODEL inside the package)."),
    max_minutes: float = typer.Option(None, help="Stop (after a checkpoint) once this much wall time has passed."),
    threads: int = typer.Option(None, help="torch threads (default: the recipe's)."),
    seed: int = typer.Option(None, help="Training seed (default: the recipe's)."),
    export_only: bool = typer.Option(False, "--export-only", help="Skip training; export the current checkpoint."),
) -> None:
    """Train a reference model on ShapesWorld by flow matching, with resumable checkpoints."""
    from tmpbench.models.assets import asset_dir
    from tmpbench.training.reference import default_config, export, train

    cfg = default_config(model)  # one line naming the trainable models for any other name
    if steps is not None:
        if steps < 1:
            raise TmpbenchError(f"--steps must be >= 1, got {steps}")
        cfg.steps = steps
    if threads is not None:
        cfg.threads = threads
    if seed is not None:
        cfg.seed = seed
    run_dir = work_dir / model
    ckpt = run_dir / "checkpoint.pt"
    if not export_only:
        ckpt = train(cfg, run_dir, max_minutes=max_minutes, log=lambda m: typer.echo(m, err=True))
    elif not ckpt.exists():
        raise TmpbenchError(f"no checkpoint at {ckpt}; train first (drop --export-only)")
    dest = export(ckpt, out or asset_dir(model))
    typer.echo(f"exported {model} to {dest}")


def register(app: typer.Typer) -> None:
    app.command("train-reference")(train_reference)
