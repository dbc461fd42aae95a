"""``tmpbench score``: score a folder of generated images against a suite.

The folder is in GenEval's layout (``DIR/<index:05d>/metadata.jsonl`` + ``samples/<n:04d>.png``), as
``tmpbench suites render`` and the generators write it. Every item of the suite (after ``--limit``)
must be present and its metadata prompt must match the suite's; anything else is refused with one
line, never scored silently. ``--limit N`` also scores the first N items of a folder rendered for
the whole suite (items are found at their full-suite positions). ShapesWorld suites are scored by
the analytic detector; real-photo suites (``geneval``) need an open-vocabulary detector that
tmpbench does not ship yet.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import typer

from tmpbench.errors import DataFormatError, TmpbenchError
from tmpbench.suites.layout import SampleFolder, read_folder

#: Suites of real photos: scoring them needs GenEval's Mask2Former + CLIP, not the ShapesWorld detector.
OPEN_VOCABULARY_SUITES = ("geneval",)


def _refuse_open_vocabulary(name: str) -> None:
    raise TmpbenchError(
        f"suite {name!r} holds real-photo prompts: scoring it needs an open-vocabulary detector "
        "(GenEval's Mask2Former + CLIP colour classifier), which tmpbench does not ship yet; "
        "score ShapesWorld suites (shapes-t2i, shapes-edit) or run GenEval's evaluate_images.py on the folder"
    )


def _check_scorable(suite) -> None:
    """Refuse suites the ShapesWorld detector cannot score, before reading any image."""
    from tmpbench.shapes.world import SHAPES

    if suite.name in OPEN_VOCABULARY_SUITES:
        _refuse_open_vocabulary(suite.name)
    for item in suite.items:
        meta = item.metadata
        if suite.kind == "t2i":
            classes = {r.get("class") for key in ("include", "exclude") for r in meta.get(key, [])}
            if not classes <= set(SHAPES):
                _refuse_open_vocabulary(suite.name)
        elif not (isinstance(meta.get("source"), dict) and isinstance(meta.get("target"), dict)):
            raise TmpbenchError(
                f"suite {suite.name!r} edits real images: scoring them needs a learned editing judge, which "
                "tmpbench does not ship yet; score shapes-edit instead"
            )


def _folder_prompt(folder: SampleFolder) -> str | None:
    meta = folder.metadata
    if not isinstance(meta, dict):
        return None
    return meta.get("prompt", meta.get("instruction"))


def folder_positions(
    suite, folders: list[SampleFolder], limit: int | None, source: str | None
) -> tuple[list[int], int]:
    """The folder index of each suite item (in suite order), and how many items the folder was rendered for.

    Normally item ``i`` lives in folder ``i``. With ``--limit`` on a folder rendered for the whole
    suite (it holds indices past the limited count), each kept item is found at its position in the
    full suite instead, so ``suites render`` once and ``score --limit N`` for a quick look both work.
    """
    from tmpbench.suites.core import load_suite

    n = len(suite.items)
    if limit is None or max(f.index for f in folders) < n:
        return [item.index for item in suite.items], n
    full = load_suite(suite.name, source=source)
    where = {(it.id, it.seed): it.index for it in full.items}
    return [where[(it.id, it.seed)] for it in suite.items], len(full.items)


def match_folders(
    suite, folders: list[SampleFolder], images: Path, positions: list[int], rendered_for: int
) -> list[SampleFolder]:
    """Pair each suite item with the folder at its position; refuse missing or extra folders and wrong prompts.

    ``rendered_for`` is the item count the folder should hold (indices ``0..rendered_for-1``).
    Returns the folders in suite order, carrying the *suite's* metadata (the ground truth).
    """
    by_index = {f.index: f for f in folders}
    extra = sorted(i for i in by_index if i >= rendered_for)
    if extra:
        raise DataFormatError(
            f"{images} holds item {extra[0]:05d} but suite {suite.name!r} has {rendered_for} items "
            f"(0..{rendered_for - 1:05d}); were the images generated for another suite or --limit?"
        )
    missing = [p for p in positions if p not in by_index]
    if missing:
        raise DataFormatError(
            f"{images} is incomplete: {len(missing)} of {len(positions)} items missing (first: {missing[0]:05d}); "
            "render the missing items, or score with the --limit the folder was rendered with"
        )
    out = []
    for item, pos in zip(suite.items, positions):
        folder = by_index[pos]
        prompt = _folder_prompt(folder)
        if prompt != item.prompt:
            raise DataFormatError(
                f"{images / f'{pos:05d}' / 'metadata.jsonl'}: prompt {prompt!r} does not match suite "
                f"{suite.name!r} item {item.index} ({item.prompt!r}); were the images generated for this suite "
                "and --limit?"
            )
        out.append(replace(folder, metadata=item.metadata))
    return out


def score_images(suite_name: str, images: Path, limit: int | None = None, source: str | None = None) -> dict:
    """Load the suite, validate the folder against it and score it. Returns the scorer's dict plus suite identity."""
    from tmpbench.scoring.shapes_scoring import score_edit_folder, score_t2i_folder
    from tmpbench.suites.core import load_suite

    if suite_name in OPEN_VOCABULARY_SUITES:
        _refuse_open_vocabulary(suite_name)
    if limit is not None and limit < 1:
        raise TmpbenchError(f"--limit must be a positive number of items, got {limit}")
    suite = load_suite(suite_name, source=source, limit=limit)
    _check_scorable(suite)
    images = Path(images)
    folders = read_folder(images)
    positions, rendered_for = folder_positions(suite, folders, limit, source)
    folders = match_folders(suite, folders, images, positions, rendered_for)
    result = score_t2i_folder(folders) if suite.kind == "t2i" else score_edit_folder(folders)
    return {
        "suite": suite.name,
        "suite_version": suite.version,
        "suite_hash": suite.hash,
        "images_dir": str(images),
        "items": len(suite.items),
        **result,
    }


def _json_safe(obj):
    """Replace NaN/inf floats with None so the output is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def format_table(result: dict) -> str:
    """Human-readable summary: identity line, ``overall`` and one row per category."""
    what = "edit success, mean over edit types" if result["kind"] == "edit" else "mean over tags"
    lines = [
        f"suite    {result['suite']} v{result['suite_version']} ({result['kind']}, {result['items']} items, "
        f"{result['images']} images, hash {result['suite_hash'][:12]})",
        f"overall  {result['overall']:.4f}  ({what})",
    ]
    width = max(len(c) for c in [*result["by_category"], "overall"])
    if result["kind"] == "t2i":
        lines.append("by_category")
        for cat, acc in result["by_category"].items():
            ok, n = result["counts"][cat]
            lines.append(f"  {cat:<{width}}  {acc:.4f}  ({ok}/{n})")
    else:
        pres = result["preservation"]
        lines.append("by_category (preservation outside the edited cells; PSNR in dB, capped at 100)")
        lines.append(
            f"  {'':<{width}}  {'success':>7}  {'psnr_src':>8}  {'psnr_tgt':>8}  {'l1_src':>7}  {'l1_tgt':>7}"
        )
        rows = [(cat, acc, pres["by_category"][cat]) for cat, acc in result["by_category"].items()]
        rows.append(("overall", result["overall"], pres["overall"]))
        for cat, acc, p in rows:
            lines.append(
                f"  {cat:<{width}}  {acc:7.4f}  {p['psnr_source']:8.2f}  {p['psnr_target']:8.2f}  "
                f"{p['l1_source']:7.5f}  {p['l1_target']:7.5f}"
            )
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command("score")
    def score(
        suite: str = typer.Option(..., "--suite", help="Suite name (see `tmpbench suites list`)."),
        images: Path = typer.Option(
            ..., "--images", help="Image folder in GenEval layout: DIR/<index:05d>/samples/<n>.png."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the full result (per-sample verdicts too) as JSON."),
        limit: int | None = typer.Option(
            None, "--limit", help="Score only the suite's first N items (as `suites render --limit N` picks them)."
        ),
        source: str | None = typer.Option(None, "--source", help="The suite's source file or folder, if it needs one."),
    ) -> None:
        """Score generated images against a suite: prints `overall` and `by_category`."""
        result = score_images(suite, images, limit=limit, source=source)
        if as_json:
            typer.echo(json.dumps(_json_safe(result), indent=2))
        else:
            typer.echo(format_table(result))
