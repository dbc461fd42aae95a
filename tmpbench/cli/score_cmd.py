"""``tmpbench score``: score a folder of generated images against a suite, with the scorers of ``tmpbench run``.

The folder is in GenEval's layout (``DIR/<index:05d>/metadata.jsonl`` + ``samples/<n:04d>.png``), as
``tmpbench suites render``, ``tmpbench generate`` and ``tmpbench run`` write it. Every item of the
suite (after ``--limit``) must be present and its metadata prompt must match the suite's; anything
else is refused with one line, never scored silently. ``--limit N`` also scores the first N items
of a folder rendered for the whole suite (items are found at their full-suite positions).

What is scored (:data:`FOLDER_METRICS`): GenEval correctness for a suite whose metrics include
``geneval`` -- the analytic detector on ShapesWorld (``world: shapes``), an open-vocabulary
detector on real photos (OWLv2 in ``$TMPBENCH_GENEVAL_DETECTOR`` plus tmpbench's CLIP weights; without
them the command stops with one line naming what to provide) -- and edit success plus preservation
for a suite whose metrics include ``edit_success``. The images go through the scoring engine
(:mod:`tmpbench.scoring.engine`) and the same scorer objects as ``tmpbench run``, so ``overall``
and ``by_category`` equal the values ``results.json`` records for the same images.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import typer

from tmpbench.errors import DataFormatError, TmpbenchError
from tmpbench.provenance import json_safe
from tmpbench.suites.layout import SampleFolder, load_image, read_folder

#: The metrics `tmpbench score` computes, by suite kind (the first one is ``overall``); a suite is
#: scorable when its YAML's ``metrics`` list the first one.
FOLDER_METRICS = {"t2i": ("geneval",), "edit": ("edit_success", "preservation_psnr", "preservation_l1")}
_PRESERVATION = {"psnr_source": ("preservation_psnr", "metrics"), "psnr_target": ("psnr_target", "extras"),
                 "l1_source": ("preservation_l1", "metrics"), "l1_target": ("l1_target", "extras")}


class ScorerUnavailableError(TmpbenchError):
    """A scorer ``tmpbench score`` needs cannot run here (no detector, weights or judge); the message names the fix."""


def folder_metrics(spec) -> list[tuple[str, str | None]]:
    """The metrics ``tmpbench score`` computes for a suite (by its kind and metrics); refuse other suites."""
    wanted = FOLDER_METRICS[spec.kind]
    if wanted[0] in spec.metrics:
        return [(name, None) for name in wanted]
    if spec.kind == "edit":
        raise TmpbenchError(
            f"suite {spec.name!r} edits real images: scoring them needs a learned editing judge, which "
            "tmpbench does not ship yet; score shapes-edit instead"
        )
    raise TmpbenchError(
        f"suite {spec.name!r} is not a GenEval-style suite (its metrics: {', '.join(spec.metrics) or 'none'}); "
        f"`tmpbench score` scores suites with geneval or edit_success; use `tmpbench run` for {spec.name!r}"
    )


def require_available(scorers: dict) -> None:
    """Stop with one line when a scorer cannot run (``tmpbench run`` would record "not scored")."""
    for name, scorer in scorers.items():
        ok, reason = scorer.available()
        if not ok:
            raise ScorerUnavailableError(f"cannot score {name}: {reason}")


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


def sample_views(suite, folders: list[SampleFolder]) -> tuple[list, list[tuple[int, int]]]:
    """The folder's images as the scorers' :class:`~tmpbench.scoring.base.SampleView` (suite order), and
    each view's ``(folder index, sample number)``. Generation seeds are unknown here (``seed=None``)."""
    from tmpbench.scoring.base import SampleView
    from tmpbench.shapes.render import render_source

    views, where = [], []
    for item, folder in zip(suite.items, folders):
        for n, path in enumerate(folder.samples):
            image = load_image(path)
            source = None
            if suite.kind == "edit" and suite.world == "shapes":  # as `tmpbench run` passes it
                source = render_source(item.metadata, image.shape[0])
            views.append(SampleView(item, n, None, image, source=source))
            where.append((folder.index, n))
    return views, where


def _nanmean(values: list) -> float:
    arr = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def _summary(kind: str, metrics: dict, rows: list[dict], where: list[tuple[int, int]]) -> dict:
    """The command's result: ``overall``/``by_category`` of the first metric, counts and per-sample verdicts."""
    main = FOLDER_METRICS[kind][0]
    counts: dict[str, list[int]] = {}
    samples = []
    for row, (index, n) in zip(rows, where):
        correct = bool(row["metrics"][main])
        c = counts.setdefault(row["category"], [0, 0])
        c[0] += correct
        c[1] += 1
        sample = {"index": index, "sample": n, "tag": row["category"], "prompt": row["prompt"], "correct": correct}
        if kind == "t2i":
            sample["reason"] = row["extras"]["geneval_reason"]
        else:
            sample["reason"] = row["extras"]["edit_reason"]
            sample.update({key: row[part].get(col) for key, (col, part) in _PRESERVATION.items()})
        samples.append(sample)
    total = len(rows)
    out = {
        "kind": kind,
        "overall": metrics[main]["value"],
        "by_category": metrics[main]["by_category"],
        "counts": counts,
        "images": total,
        "correct_images": sum(c[0] for c in counts.values()) / total,
    }
    if kind == "edit":  # GenEval's convention for the table: per edit type, then the mean over types
        by_tag = {
            tag: {key: _nanmean([s[key] for s in samples if s["tag"] == tag]) for key in _PRESERVATION}
            for tag in counts
        }
        overall = {key: _nanmean([v[key] for v in by_tag.values()]) for key in _PRESERVATION}
        out["preservation"] = {"overall": overall, "by_category": by_tag}
    out["samples"] = samples
    out["metrics"] = metrics
    return out


def score_images(
    suite_name: str, images: Path, limit: int | None = None, source: str | None = None, device: str = "cpu", judges: dict | None = None
) -> dict:
    """Validate the folder against the suite and score it through the scoring engine.

    Returns the suite's identity, ``overall``, ``by_category``, ``counts``, per-sample verdicts
    (``samples``), the ``results.json``-style entry of every metric (``metrics``) and the scorers'
    identities (``scorers``). ``judges`` passes in-code detectors/judges by metric name.
    """
    from tmpbench.scoring.engine import build_scorers, score_samples, summarise
    from tmpbench.suites.core import get_spec, load_suite

    spec = get_spec(suite_name)
    scorers = build_scorers(spec, folder_metrics(spec), device=device, judges=judges)
    require_available(scorers)  # before reading any image
    if limit is not None and limit < 1:
        raise TmpbenchError(f"--limit must be a positive number of items, got {limit}")
    suite = load_suite(suite_name, source=source, limit=limit)
    images = Path(images)
    folders = read_folder(images)
    positions, rendered_for = folder_positions(suite, folders, limit, source)
    folders = match_folders(suite, folders, images, positions, rendered_for)
    views, where = sample_views(suite, folders)
    values, skipped, _ = score_samples(scorers, views)
    for name, reason in skipped.items():
        raise ScorerUnavailableError(f"cannot score {name}: {reason.removeprefix('not scored: ')}")
    rows = [
        {
            "category": v.item.category,
            "prompt": v.item.prompt,
            "metrics": {k: val for k, val in vals.items() if k in scorers},
            "extras": {k: val for k, val in vals.items() if k not in scorers},
        }
        for v, vals in zip(views, values)
    ]
    metrics = {name: summarise(name, scorer, rows) for name, scorer in scorers.items()}
    return {
        "suite": suite.name,
        "suite_version": suite.version,
        "suite_hash": suite.hash,
        "images_dir": str(images),
        "items": len(suite.items),
        **_summary(suite.kind, metrics, rows, where),
        "scorers": {name: scorer.identity() for name, scorer in scorers.items()},
    }


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
        device: str = typer.Option("cpu", "--device", help="Torch device for learned scorers (the open-vocabulary detector, CLIP)."),
    ) -> None:
        """Score generated images against a suite: prints `overall` and `by_category`."""
        result = score_images(suite, images, limit=limit, source=source, device=device)
        if as_json:
            typer.echo(json.dumps(json_safe(result), indent=2))
        else:
            typer.echo(format_table(result))
