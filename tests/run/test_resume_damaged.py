"""Resume validates what it reuses: damaged samples are regenerated (only those), and a failed rerun leaves
no results.json that looks current. The fuzz test damages run folders without running a model."""

import json
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tmpbench.errors import DataFormatError, TmpbenchError
from tmpbench.run import RunConfig, run_benchmark
from tmpbench.run.generate import OutputLayout
from tmpbench.suites.core import load_suite
from tmpbench.suites.layout import load_image, read_folder


def cfg(out, pipe, **kw):
    base = dict(suite="shapes-t2i", model="tiny-dit", model_path=str(pipe), limit=4, seeds=2, steps=2, batch_size=4, out=out,
                metrics="geneval,fid", progress=False, argv=["test"])
    base.update(kw)
    return RunConfig(**base)


def rows(out):
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_damaged_samples_are_regenerated_and_scores_match_an_undamaged_run(tmp_path, tiny_pipe_dir, capsys):
    out = tmp_path / "run"
    first = run_benchmark(cfg(out, tiny_pipe_dir))
    images = out / "images"
    pngs = sorted(images.rglob("*.png"))
    assert len(pngs) == 8
    good = {p: p.read_bytes() for p in pngs}
    cut10, cut_half = images / "00001" / "samples" / "0000.png", images / "00003" / "samples" / "0001.png"
    cut10.write_bytes(good[cut10][:10])
    cut_half.write_bytes(good[cut_half][: len(good[cut_half]) // 2])
    untouched = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in pngs if p not in (cut10, cut_half)}
    capsys.readouterr()

    again = run_benchmark(cfg(out, tiny_pipe_dir))
    gen = again["generation"]
    assert gen["generated_now"] == 2 and gen["resumed"] == 6 and gen["damaged_regenerated"] == 2
    # exactly those two files were rewritten (their item's other sample too was left alone), byte for byte as before
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in untouched} == untouched
    assert {p: p.read_bytes() for p in pngs} == good
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("resume:")]  # (library progress bars aside)
    assert len(err) == 1 and err[0].startswith("resume: regenerated 2 damaged sample(s) of images; first: image ")
    assert str(cut10) in err[0]
    assert again["metrics"] == first["metrics"]
    # and they equal a run that was never damaged
    fresh = run_benchmark(cfg(tmp_path / "fresh", tiny_pipe_dir))
    assert again["metrics"] == fresh["metrics"]
    assert [r["metrics"] for r in rows(out)] == [r["metrics"] for r in rows(tmp_path / "fresh")]


def test_a_damaged_oneig_grid_is_regenerated(tmp_path, tiny_pipe_dir):
    csv = tmp_path / "OneIG-Bench.csv"
    csv.write_text("category,id,prompt_en,type,prompt_length,class\n"
                   + "".join(f"General_Object,{i:03d},a red circle,x,short,c\n" for i in range(2)))
    kw = dict(suite="oneig", source=str(csv), limit=None, seeds=4, metrics="clipscore")
    run_benchmark(cfg(tmp_path / "run", tiny_pipe_dir, **kw))
    grids = sorted((tmp_path / "run" / "images").rglob("*.webp"))
    good = {g: g.read_bytes() for g in grids}
    grids[1].write_bytes(good[grids[1]][: len(good[grids[1]]) // 2])
    again = run_benchmark(cfg(tmp_path / "run", tiny_pipe_dir, **kw))["generation"]
    assert again["generated_now"] == 4 and again["damaged_regenerated"] == 4 and again["resumed"] == 4
    assert {g: g.read_bytes() for g in grids} == good


def test_a_failed_rerun_leaves_no_current_looking_results(tmp_path, tiny_pipe_dir, monkeypatch):
    out = tmp_path / "run"
    first = run_benchmark(cfg(out, tiny_pipe_dir, limit=2, seeds=1, metrics="geneval"))
    from tmpbench.run import pipeline

    def boom(*args, **kwargs):
        raise RuntimeError("scorer crashed")

    monkeypatch.setattr(pipeline.engine, "score_samples", boom)
    with pytest.raises(RuntimeError, match="scorer crashed"):
        run_benchmark(cfg(out, tiny_pipe_dir, limit=2, seeds=1, metrics="geneval"))
    assert not (out / "results.json").exists() and not (out / "samples.jsonl").exists()
    assert json.loads((out / "results.previous.json").read_text())["metrics"] == first["metrics"]
    monkeypatch.undo()
    assert run_benchmark(cfg(out, tiny_pipe_dir, limit=2, seeds=1, metrics="geneval"))["metrics"] == first["metrics"]
    assert (out / "results.json").is_file()


def test_a_damaged_run_json_is_one_line(tmp_path, tiny_pipe_dir):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_bytes(b"\x89{not json")
    with pytest.raises(DataFormatError, match=r"run\.json is damaged \(not a JSON object\); delete it"):
        run_benchmark(cfg(out, tiny_pipe_dir, limit=1, seeds=1, metrics="geneval"))


# ------------------------------------------------------------------------------------------------
# fuzz: damaged run folders (no model: the layout is written from fixed images)
SIZE = 16


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A GenEval-layout folder (3 items x 2 seeds) and a OneIG grid folder, written once."""
    root = tmp_path_factory.mktemp("layouts")
    suite = load_suite("shapes-t2i", limit=3)
    rng = np.random.default_rng(0)
    geneval = OutputLayout("geneval", root / "geneval", 2)
    oneig = OutputLayout("oneig", root / "oneig", 4)
    for item in suite.items:
        ims = [Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)) for _ in range(4)]
        geneval.write(item, ims[:2])
        oneig.write(item, ims)
    return suite, geneval, oneig


def wrong_image(kind: str) -> bytes:
    import io

    im = Image.new("RGB", (SIZE + 1, SIZE)) if kind == "size" else Image.new("L", (SIZE, SIZE))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


DAMAGE = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("random"), st.binary(max_size=200)),
    st.tuples(st.just("overwrite"), st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("wrong"), st.sampled_from(["size", "mode"])),
    st.tuples(st.just("delete")),
)


def damage(path, how) -> bool:
    """Apply ``how`` to ``path``; False when the bytes did not change (nothing to detect)."""
    data = path.read_bytes()
    kind = how[0]
    if kind == "truncate":
        new = data[: int(how[1] * len(data))]
    elif kind == "random":
        new = how[1]
    elif kind == "overwrite":
        at = int(how[1] * len(data))
        new = data[:at] + how[2] + data[at + len(how[2]):]
    elif kind == "wrong":
        new = wrong_image(how[1])
    else:
        path.unlink()
        return True
    path.write_bytes(new)
    return new != data


#: (member kind, damage kind) -> {"resume redoes": n, "reader error": n, "reader accepts": n} (pytest -s prints it)
TALLY: dict[tuple[str, str], dict[str, int]] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_tally():
    yield
    for key, counts in sorted(TALLY.items()):
        print(f"damaged run folder: {key[0]:9s} {key[1]:10s} {counts}")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(member=st.integers(0, 8), how=DAMAGE)
def test_damaged_run_folder_is_redone_on_resume_and_refused_by_readers(written, tmp_path_factory, member, how):
    suite, geneval, oneig = written
    root = tmp_path_factory.mktemp("fuzz")
    layouts = {k: OutputLayout(lay.kind, root / k, lay.seeds) for k, lay in (("geneval", geneval), ("oneig", oneig))}
    for k, lay in (("geneval", geneval), ("oneig", oneig)):
        shutil.copytree(lay.root, layouts[k].root)
    item = suite.items[member % 3]
    # members: 0-2 a GenEval sample, 3-5 an item's metadata.jsonl, 6-8 a OneIG grid (.webp)
    if member < 3:
        layout, path = layouts["geneval"], layouts["geneval"].sample_location(item, member % 2)[0]
    elif member < 6:
        layout, path = layouts["geneval"], layouts["geneval"].root / f"{item.index:05d}" / "metadata.jsonl"
    else:
        layout, path = layouts["oneig"], layouts["oneig"].grid_path(item)
    before = path.read_bytes()
    if not damage(path, how):
        return
    if 3 <= member < 6 and path.exists() and path.read_bytes().strip() == before.strip():
        return  # only the trailing newline went: the metadata is whole
    bad, problems = layout.unusable(item, SIZE)
    is_meta, is_grid = 3 <= member < 6, member >= 6
    tally = TALLY.setdefault(("metadata" if is_meta else "grid" if is_grid else "sample", how[0]),
                             {"resume redoes": 0, "reader error": 0, "reader accepts": 0})
    tally["resume redoes"] += bool(bad)
    webp_flip = is_grid and how[0] == "overwrite"  # lossless WebP has no checksum: a changed byte may still decode
    if not webp_flip:
        assert bad, f"{how} of {path.name} not noticed"
    others = [it for it in suite.items if it is not item]
    assert all(layout.unusable(it, SIZE) == ([], []) for it in others)
    if bad and path.exists() and not is_meta:
        assert len(problems) == (layout.seeds if is_grid else 1) and str(path) in problems[0]
    # `tmpbench score` / `tmpbench fid` read through read_folder + load_image: one line naming the file, or success
    try:
        if layout.kind == "geneval":
            for folder in read_folder(layout.root):
                for sample in folder.samples:
                    load_image(sample)
        elif path.exists():
            load_image(path)
    except TmpbenchError as exc:
        tally["reader error"] += 1
        assert "\n" not in str(exc) and str(path.parent) in str(exc)
    else:
        tally["reader accepts"] += 1
        # readers take any size and mode, a folder missing a sample, and metadata that is still a JSON object
        assert how[0] in ("wrong", "delete") or webp_flip or (is_meta and how[0] == "overwrite"), f"{how} of {path.name} read"
