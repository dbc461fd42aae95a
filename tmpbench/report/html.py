"""A self-contained ``report.html``: the comparison table, the quality-vs-ratio plot and image grids.

Grids put the same prompt and seed side by side across pruners and budgets, the unpruned teacher
first (an unpruned run among the inputs, else the teacher images a pruned run keeps in
``DIR/teacher``). Every image and the plot are embedded as base64 data URIs, so the file can be
mailed or attached to a CI job on its own.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
from pathlib import Path

import numpy as np
from PIL import Image

from tmpbench.report.tables import (
    RunRecord,
    check_comparable,
    comparison_table,
    distinct_labels,
    order_runs,
    render,
    sample_key,
)

GRID_ROWS = 12  # prompts shown per report
CELL_PX = 96  # displayed size of one sample (small ShapesWorld images are upscaled, pixelated)

CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; }
table.tmpbench-table { border-collapse: collapse; font-size: 13px; }
table.tmpbench-table th, table.tmpbench-table td { border: 1px solid #bbb; padding: 4px 8px; text-align: left; }
table.tmpbench-table th { background: #eef; }
table.grid { border-collapse: collapse; }
table.grid td, table.grid th { border: 1px solid #ddd; padding: 4px; text-align: center; font-size: 11px; vertical-align: top; }
table.grid th.prompt { text-align: left; max-width: 220px; font-weight: normal; }
table.grid img { width: %dpx; height: %dpx; image-rendering: pixelated; display: block; margin: auto; }
.ok { color: #070; } .bad { color: #a00; } .muted { color: #777; font-size: 12px; }
""" % (CELL_PX, CELL_PX)


def data_uri(image: Image.Image | np.ndarray) -> str:
    """PNG data URI of an image."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _open_cell(path: Path, cell: int | None) -> Image.Image | None:
    if not path.is_file():
        return None
    with Image.open(path) as im:
        im = im.convert("RGB")
    if cell is None:
        return im
    w, h = im.size[0] // 2, im.size[1] // 2  # OneIG 2x2 grid, reading order
    r, c = divmod(int(cell), 2)
    return im.crop((c * w, r * h, (c + 1) * w, (r + 1) * h))


def sample_image(run: RunRecord, row: dict) -> Image.Image | None:
    return _open_cell(run.path / row["image"], row.get("cell"))


def teacher_image(run: RunRecord, row: dict) -> Image.Image | None:
    """The unpruned teacher's image of a pruned run's sample (``DIR/teacher``, GenEval layout)."""
    image = str(row["image"])
    images_dir = run.results.get("images_dir", "images")
    if row.get("cell") is not None or not image.startswith(images_dir + "/"):
        return None
    return _open_cell(run.path / "teacher" / image[len(images_dir) + 1:], None)


def grid_rows(runs: list[RunRecord], max_rows: int = GRID_ROWS) -> list[str]:
    """Sample keys shown in the grids: the first run's order, spread over its categories."""
    first = runs[0].samples
    by_cat: dict[str, list[str]] = {}
    for row in first:
        by_cat.setdefault(str(row.get("category")), []).append(sample_key(row))
    keys: list[str] = []
    depth = 0
    while len(keys) < max_rows and any(depth < len(v) for v in by_cat.values()):
        for v in by_cat.values():
            if depth < len(v) and len(keys) < max_rows:
                keys.append(v[depth])
        depth += 1
    return keys


def grids_html(runs: list[RunRecord], metric: str | None, max_rows: int = GRID_ROWS) -> str:
    """One table: a row per (prompt, seed), a column per run, teacher first; cells hold image + score."""
    runs = order_runs(runs)
    teacher_run = next((r for r in runs if r.is_teacher), None)
    pruned = [r for r in runs if not r.is_teacher]
    lookup = {id(r): {sample_key(s): s for s in r.samples} for r in runs}
    keys = grid_rows(runs, max_rows)
    head = ['<th class="prompt">prompt (seed)</th>']
    columns: list[tuple[str, RunRecord | None]] = []
    if teacher_run is not None:
        columns.append(("teacher", teacher_run))
    elif pruned and pruned[0].path.joinpath("teacher").is_dir():
        columns.append(("teacher-from-run", pruned[0]))
    columns += [("run", r) for r in pruned]
    labels = distinct_labels(runs)
    for kind, r in columns:
        removed = f"<span class='muted'>{r.achieved_ratio:.1%} removed</span>"
        title = "teacher (unpruned)" if kind != "run" else f"{html.escape(labels[str(r.path)])}<br>{removed}"
        head.append(f"<th>{title}</th>")
    body = []
    for key in keys:
        base_row = next((rows[key] for rows in lookup.values() if key in rows), None)
        if base_row is None:
            continue
        cells = [f'<th class="prompt">{html.escape(str(base_row.get("prompt")))}<br><span class="muted">'
                 f'{html.escape(str(base_row.get("category")))}, seed {base_row["seed"]}</span></th>']
        for kind, r in columns:
            row = lookup[id(r)].get(key)
            img = None
            if row is not None:
                img = teacher_image(r, row) if kind == "teacher-from-run" else sample_image(r, row)
            score = ""
            if row is not None and metric and kind != "teacher-from-run":
                v = (row.get("metrics") or {}).get(metric)
                if v is not None:
                    score = f"<div class='{'ok' if v else 'bad'}'>{metric} {float(v):.3g}</div>"
            cells.append(f"<td><img alt='{html.escape(key)}' src='{data_uri(img)}'>{score}</td>" if img is not None
                         else "<td class='muted'>missing</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return ('<table class="grid" id="grids"><thead><tr>' + "".join(head) + "</tr></thead><tbody>"
            + "".join(body) + "</tbody></table>")


def write_report(
    runs: list[RunRecord],
    out_dir: str | Path,
    metric: str | None = None,
    title: str = "tmpbench report",
    notes: list[str] | None = None,
    max_rows: int = GRID_ROWS,
    versus: str | None = None,
) -> dict:
    """Write ``report.html``, the table (md/csv) and the plot (PNG/SVG) into ``out_dir``; return their paths.

    ``metric`` is the plotted quality metric (default: the first per-sample metric every run scored).
    ``versus`` (a pruner, e.g. ``tmp``) adds ``paired.md``: every other pruner paired with it per metric
    (:func:`tmpbench.report.paired.versus_table`). Runs at several recovery lengths add ``recovery.md``
    (:func:`tmpbench.report.curves.recovery_table`).
    """
    from tmpbench.report.analyses import extra_tables
    from tmpbench.report.plot import plot_quality_vs_ratio

    check_comparable(runs, "report")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metric = metric or default_metric(runs)
    table = comparison_table(runs)
    (out_dir / "table.md").write_text(render(table, "md") + "\n")
    (out_dir / "table.csv").write_text(render(comparison_table(runs, numeric=True), "csv"))
    plot = plot_quality_vs_ratio(runs, metric, out_dir / f"quality_vs_ratio_{metric}") if metric else None
    first = runs[0].results
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='muted'>suite {html.escape(first['suite']['name'])} v{html.escape(str(first['suite']['version']))}, "
        f"{first['suite']['items']} items x {first['generation']['seeds_per_item']} seed(s), hash {first['suite']['hash'][:12]}; "
        f"{first['generation']['steps']} steps at {first['generation']['size']} px; {len(runs)} runs; "
        f"written {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}</p>",
    ]
    for note in notes or []:
        parts.append(f"<p>{html.escape(note)}</p>")
    parts += ["<h2>Comparison (95% bootstrap CIs)</h2>", '<div id="table">', render(table, "html"), "</div>"]
    has_reference = versus is not None and any(r.pruner == versus and not r.settings for r in runs)
    extra = extra_tables(runs, versus=versus if has_reference else None)
    written: dict[str, Path | None] = {}
    for key, heading in (("paired", f"Paired with {versus}"), ("recovery", "Recovery curve")):
        for metric_name, caption, table in extra[key]:
            parts += [f"<h2>{html.escape(heading)}: {html.escape(metric_name)}</h2>",
                      f"<p class='muted'>{html.escape(caption)}</p>", render(table, "html")]
        written[key] = None
        if extra[key]:
            written[key] = out_dir / f"{key}.md"
            written[key].write_text("\n".join(f"{caption}\n\n{render(table, 'md')}\n" for _, caption, table in extra[key]))
    if plot is not None:
        svg = plot["svg"].read_text()
        svg = svg[svg.find("<svg"):]  # drop the XML prolog so it can sit inline
        parts += [f"<h2>{html.escape(metric)} vs pruning ratio</h2>", f'<div id="plot">{svg}</div>',
                  f"<p class='muted'>Pareto front: {html.escape(', '.join(plot['pareto']) or 'none')}</p>"]
    parts += ["<h2>Samples: same prompt and seed across runs</h2>", grids_html(runs, metric, max_rows), "</body></html>"]
    report = out_dir / "report.html"
    report.write_text("\n".join(parts))
    return {"report": report, "table_md": out_dir / "table.md", "table_csv": out_dir / "table.csv",
            "plot_png": plot["png"] if plot else None, "plot_svg": plot["svg"] if plot else None,
            "pareto": plot["pareto"] if plot else [], "metric": metric, "paired_md": written["paired"], "recovery_md": written["recovery"]}


def default_metric(runs: list[RunRecord]) -> str | None:
    """The first metric every run scored per sample (e.g. geneval for shapes-t2i), else any scored one."""
    candidates = [m for m in runs[0].metric_names()
                  if all(m in r.results["metrics"] and not isinstance(r.results["metrics"][m], str) for r in runs)]
    per_sample = [m for m in candidates if all(r.metric_values(m) for r in runs)]
    return (per_sample or candidates or [None])[0]


__all__ = ["data_uri", "default_metric", "grids_html", "write_report"]
