"""``tmpbench fid DIR1 DIR2 [--mode M] [--json]``: FID and KID between two image folders.

Each folder is either a flat folder of images (``*.png``, ``*.jpg``, ``*.webp``) or tmpbench's GenEval
layout (``DIR/<index:05d>/samples/*.png``). ``DIR1`` is the reference side. The feature mode pins the
resizing, network and weights (``shapes``: the committed ShapesWorld extractor; ``inception``:
clean-fid's Inception; ``clip``: open_clip ViT-B-32); features are cached per folder content and mode
(``--no-cache`` to skip, ``$TMPBENCH_CACHE_DIR`` or ``--cache-dir`` to move the cache).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer


def fid(
    dir1: Path = typer.Argument(..., help="Reference image folder (flat or GenEval layout)."),
    dir2: Path = typer.Argument(..., help="Image folder to compare (flat or GenEval layout)."),
    mode: str = typer.Option("shapes", "--mode", help="Feature mode: shapes, inception or clip."),
    weights: Path = typer.Option(None, "--weights", help="Feature-extractor weights file (overrides env var and cache)."),
    device: str = typer.Option("cpu", "--device", help="Torch device for the feature extractor."),
    kid_subsets: int = typer.Option(100, "--kid-subsets", help="KID subsets (of min(n1, n2, 1000); equal sets under 1000: one)."),
    seed: int = typer.Option(0, "--seed", help="Seed of KID's subset draws."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write cached features."),
    cache_dir: Path = typer.Option(
        None, "--cache-dir", help="Feature cache folder (default $TMPBENCH_CACHE_DIR/features or ~/.cache/tmpbench/features)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """FID (and KID) between two image folders in a pinned feature mode."""
    from tmpbench.metrics.features import get_mode
    from tmpbench.metrics.fid import fid_between_folders

    get_mode(mode)  # unknown mode: one line with "did you mean", before reading any image
    result = fid_between_folders(
        dir1, dir2, mode, weights, device, kid_subsets=kid_subsets, kid_seed=seed, use_cache=not no_cache, cache_dir=cache_dir
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    ident = result["identity"]
    typer.echo(f"fid: {result['fid']:.6g}")
    if result["kid_std"] is None:  # equal sets under 1000: one subset, the whole sets (kid_subset_plan)
        typer.echo(f"kid: {result['kid_mean']:.6g} ({result['kid_subset_note']})")
    else:
        subsets = f"{result['kid_subsets']} subsets of {result['kid_subset_size']}"
        typer.echo(f"kid: {result['kid_mean']:.6g} +- {result['kid_std']:.3g} ({subsets})")
    typer.echo(f"kid note: {result['kid_note']}")
    typer.echo(f"images: {result['n1']} vs {result['n2']}")
    typer.echo(f"mode: {ident['mode']} ({ident['network']}, weights sha256 {ident['weights_sha256'][:12]})")


def register(app: typer.Typer) -> None:
    app.command("fid")(fid)
