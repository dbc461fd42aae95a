"""Damaged pruned-model folders load to one line naming the file and the fix, never another exception.

A pruned folder is saved once per module; each example copies it, damages one member (truncation at a
random offset, random bytes, overwritten bytes, a JSON value of the wrong type, a missing member) and loads
it the way ``--model DIR`` does (:func:`tmpbench.loading.load_model`).
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tiny_generators import tiny_generator

from tmpbench.errors import TmpbenchError
from tmpbench.loading import load_model
from tmpbench.models.spec import MARKER_FILE
from tmpbench.pruning.budget import Budget, check_achieved
from tmpbench.pruning.families import apply, unit_tree
from tmpbench.pruning.io import ARCH_FILE, PLAN_FILE, PRUNED_FILE, WEIGHTS_FILE, save_pruned
from tmpbench.pruning.plan import Decision, Plan
from tmpbench.pruning.runner import PruneResult, base_config, weights_fingerprint, with_denoiser

MEMBERS = [MARKER_FILE, PRUNED_FILE, PLAN_FILE, f"transformer/{ARCH_FILE}", f"transformer/{WEIGHTS_FILE}"]
JSON_MEMBERS = MEMBERS[:4]


@pytest.fixture(scope="module")
def pruned_dir(tmp_path_factory):
    gen = tiny_generator()
    model = gen.denoiser
    tree = unit_tree(model)
    decisions = [Decision("layers.0", "linear_replace", linear={"fit": "hand"}),
                 Decision("layers.1.attention", "prune_heads", keep=[0]),
                 Decision("layers.1.feed_forward", "prune_channels", keep=[1, 5, 7, 30])]
    plan = Plan(model={"class": tree.model_class, "name": "tiny-dit"}, budget=Budget.parse("1%").to_dict(), pruner="hand",
                decisions=decisions)
    pruned = apply(model, plan, linear_maps={"layers.0": (torch.eye(32) * 0.5, torch.zeros(32))})
    achieved = sum(p.numel() for p in pruned.parameters())
    result = PruneResult(with_denoiser(gen, pruned), plan, check_achieved(tree.params, achieved, Budget.parse(str(achieved))),
                         {"hash": "c"}, {"hash": "r"}, tree.params, achieved,
                         base={"model": "tiny-dit", "class": tree.model_class, "weights": weights_fingerprint(model),
                               "config": base_config(model)})
    path = save_pruned(result, tmp_path_factory.mktemp("pruned") / "p")
    load_model(str(path))  # the undamaged folder loads
    return path


def json_paths(value, prefix=()):
    """Every path into a JSON document (the document itself excluded)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        yield (*prefix, k)
        yield from json_paths(v, (*prefix, k))


WRONG = [None, True, "x", [], {}, 1.5, -1, 0]


def set_wrong_type(doc, pick: int, wrong_pick: int):
    paths = list(json_paths(doc))
    if not paths:
        return doc, None
    path = paths[pick % len(paths)]
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    old = parent[path[-1]]
    choices = [w for w in WRONG if type(w) is not type(old)]
    parent[path[-1]] = choices[wrong_pick % len(choices)]
    return doc, path


DAMAGE = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("random"), st.binary(max_size=64)),
    st.tuples(st.just("overwrite"), st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("wrong_type"), st.integers(0, 10_000), st.integers(0, 7)),
    st.tuples(st.just("delete")),
)

#: kinds of damage that no reader can mistake for a usable folder: these must end in an error
STRUCTURAL = {"truncate", "random", "delete"}


#: (member, damage kind) -> {"error": n, "loaded": n}; printed at the end of the module (pytest -s)
TALLY: dict[tuple[str, str], dict[str, int]] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_tally():
    yield
    for (member, kind), counts in sorted(TALLY.items()):
        print(f"damaged pruned folder: {member:45s} {kind:10s} {counts}")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(member=st.sampled_from(MEMBERS), how=DAMAGE)
@example(member=f"transformer/{ARCH_FILE}", how=("wrong_type", 1101, 5))  # base_config siglip_feat_dim=-1: torch's RuntimeError
def test_damaged_pruned_folder_ends_in_one_line(pruned_dir, tmp_path_factory, member, how):
    folder = tmp_path_factory.mktemp("damaged") / "p"
    shutil.copytree(pruned_dir, folder)
    path = folder / member
    data = path.read_bytes()
    kind = how[0]
    if kind == "truncate":
        path.write_bytes(data[: int(how[1] * len(data))])
    elif kind == "random":
        path.write_bytes(how[1])
    elif kind == "overwrite":
        at = int(how[1] * len(data))
        path.write_bytes(data[:at] + how[2] + data[at + len(how[2]):])
    elif kind == "wrong_type":
        if member not in JSON_MEMBERS:
            return
        doc, _ = set_wrong_type(json.loads(data), how[1], how[2])
        path.write_text(json.dumps(doc))
    else:
        path.unlink()
    if path.exists() and path.read_bytes().strip() == data.strip():
        return  # unchanged, or only the trailing newline went
    tally = TALLY.setdefault((member, kind), {"error": 0, "loaded": 0})
    try:
        load_model(str(folder))
    except TmpbenchError as exc:
        tally["error"] += 1
        message = str(exc)
        assert "\n" not in message and str(folder) in message, message
        assert "tmpbench prune" in message or "--model DIR" in message or MARKER_FILE in message, message
    else:
        tally["loaded"] += 1
        assert kind not in STRUCTURAL, f"{kind} of {member} loaded without error"


@pytest.mark.parametrize(
    "member, damage, match",
    [
        (f"transformer/{WEIGHTS_FILE}", lambda b: b[: len(b) // 2], r"tmpbench_denoiser\.safetensors is damaged \(SafetensorError"),
        (MARKER_FILE, lambda b: b"{not json", r"tmpbench_model\.json is damaged \(not valid JSON"),
        (PLAN_FILE, None, r"plan\.json' does not exist; re-run `tmpbench prune`"),
        (PLAN_FILE, lambda b: b.replace(b'"keep": "1,5,7,30"', b'"keep": "1,5,7,3"'),
         r"plan\.json: plan decision 2 at 'layers\.1\.feed_forward': keep range '3' overlaps or precedes '7'.*re-run `tmpbench prune`"),
        (f"transformer/{ARCH_FILE}", None, r"has no tmpbench_arch\.json.*re-run `tmpbench prune`"),
        (f"transformer/{ARCH_FILE}", lambda b: b.replace(b'"heads": 1', b'"heads": "1"'), r"parts\.attention\.heads has the wrong type"),
    ],
)
def test_cli_names_the_damaged_file(pruned_dir, tmp_path, capsys, member, damage, match):
    """`tmpbench generate --model DIR` (which loads before generating) prints one line and exits 2."""
    import re

    from tmpbench.cli import main

    folder = tmp_path / "p"
    shutil.copytree(pruned_dir, folder)
    path = folder / member
    if damage is None:
        path.unlink()
    else:
        path.write_bytes(damage(path.read_bytes()))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--suite", "shapes-t2i", "--model", str(folder), "--limit", "1", "--out", str(tmp_path / "o"), "--quiet"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exc.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert re.search(match, err[0]) and str(folder) in err[0], err[0]


def _block(a, k):
    return a["lists"]["layers"]["blocks"][k]


ARCH_EDITS = {
    "no heads": lambda a: _block(a, 1)["parts"]["attention"].update(heads=0),
    "more heads than the base": lambda a: _block(a, 1)["parts"]["attention"].update(heads=5),
    "more channels than the base": lambda a: _block(a, 1)["parts"]["feed_forward"].update(channels=1000),
    "linear map of another width": lambda a: _block(a, 0).update(dim=7),
    "fewer blocks than indexed": lambda a: a["lists"]["layers"].update(original_count=1),
    "more blocks than the base": lambda a: a["lists"]["layers"].update(original_count=5),
    "a part the block lacks": lambda a: _block(a, 1)["parts"].update({"nope.x": {"kind": "ffn", "channels": 3}}),
    "a block list the model lacks": lambda a: a["lists"].update(nope=a["lists"].pop("layers")),
    "a block used twice": lambda a: _block(a, 1).update(index=0),
    "zero heads in the base config": lambda a: a["base_config"].update(n_heads=0),
    "a base width the heads do not divide": lambda a: a["base_config"].update(dim=3),
    "a tie to a missing tensor": lambda a: a.update(tied={"x.y": "nope"}),
    "an unknown part kind": lambda a: _block(a, 1)["parts"]["attention"].update(kind="conv"),
    "another format version": lambda a: a.update(version=99),
}


@pytest.mark.parametrize("edit", list(ARCH_EDITS), ids=list(ARCH_EDITS))
def test_wrong_values_in_the_architecture_spec_are_one_line(pruned_dir, tmp_path, edit):
    folder = tmp_path / "p"
    shutil.copytree(pruned_dir, folder)
    path = folder / "transformer" / ARCH_FILE
    arch = json.loads(path.read_text())
    ARCH_EDITS[edit](arch)
    path.write_text(json.dumps(arch))
    with pytest.raises(TmpbenchError) as exc:
        load_model(str(folder))
    message = str(exc.value)
    assert "\n" not in message and str(folder / "transformer") in message, message
