"""report.html: table, plot (PNG/SVG with the Pareto front), grids teacher-first; and a headless-Chromium check."""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tmpbench.report.html import write_report
from tmpbench.report.plot import plot_quality_vs_ratio
from tmpbench.report.tables import load_run

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def test_plot_writes_png_and_svg_and_marks_the_pareto_front(small_sweep, tmp_path):
    runs = [load_run(p) for p in small_sweep.values()]
    out = plot_quality_vs_ratio(runs, "psnr_teacher", tmp_path / "plot")
    assert out["png"].stat().st_size > 1000 and out["svg"].read_text().lstrip().startswith("<?xml")
    # tmp beats random at both budgets (the front compares runs at the same requested budget)
    assert out["pareto"] == ["tmp @ 25%", "tmp @ 50%"]
    assert Image.open(out["png"]).size == (704, 462)


def test_report_has_table_plot_and_teacher_first_grids(small_sweep, tmp_path):
    runs = [load_run(p) for p in small_sweep.values()]
    paths = write_report(runs, tmp_path / "report", max_rows=4)
    html = paths["report"].read_text()
    assert paths["metric"] == "geneval"
    assert 'id="table"' in html and "tmpbench-table" in html and 'id="plot"' in html and "<svg" in html
    grid = html[html.index('id="grids"'):]
    headers = re.findall(r"<th>(.*?)</th>", grid)
    assert headers[0] == "teacher (unpruned)" and headers[1].startswith("tmp @ 25%")
    assert grid.count("data:image/png;base64,") == 4 * 5  # 4 prompts x (teacher + 4 runs)
    assert "same prompt and seed" in html
    assert (tmp_path / "report" / "table.md").read_text().startswith("| model")


def _nonwhite_fraction(png: Path) -> float:
    arr = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return float((arr.min(axis=2) < 245).mean())


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium); report rendering not checked")
def test_report_renders_in_headless_chromium(small_sweep, tmp_path):
    runs = [load_run(p) for p in small_sweep.values()]
    report = write_report(runs, tmp_path / "report", max_rows=4)["report"]
    profile = tmp_path / "profile"
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--window-size=1200,1600"]
    shot = tmp_path / "shot.png"
    subprocess.run(flags + [f"--screenshot={shot}", report.resolve().as_uri()], check=True, capture_output=True, timeout=180)
    assert shot.is_file() and Image.open(shot).size == (1200, 1600)
    assert _nonwhite_fraction(shot) > 0.02  # text, table borders, plot and images: not a blank page
    dom = subprocess.run(flags + ["--dump-dom", report.resolve().as_uri()], check=True, capture_output=True, text=True,
                         timeout=180).stdout
    assert 'id="grids"' in dom and dom.count("<img") == 20
    assert "tmpbench-table" in dom and "tmp @ 25%" in dom and "<svg" in dom
