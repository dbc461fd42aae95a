"""benchmarks/fullsize_zimage_cpu.py on tiny-dit's shapes (--dry-run): the in-memory run and the run under
accelerate's disk offload (--offload disk: block-by-block checkpoint, from_pretrained with the blocks on disk,
the measured plan, the streamed surgery, load_checkpoint_and_dispatch) must make the same plan and write the
same pruned weights, including the drops and linear maps of a 75% plan, whose kept blocks move down their list."""

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


@pytest.fixture(scope="module")
def script(load_benchmark):
    return load_benchmark("fullsize_zimage_cpu")


def _record(path: Path) -> dict:
    return json.loads(re.search(r"<!-- (\{.*\}) -->", path.read_text()).group(1))


def test_the_offloaded_run_plans_and_cuts_as_the_in_memory_run(script, on_path, tmp_path):
    common = ["--dry-run", "--measured", "--calib-inputs", "2", "--budget", "75%", "--threads", "1"]
    assert script.main([*common, "--workdir", str(tmp_path / "mem"), "--out", str(tmp_path / "mem.md")]) == 0
    assert script.main([*common, "--offload", "disk", "--keep-checkpoint", "--workdir", str(tmp_path / "disk"),
                        "--out", str(tmp_path / "disk.md")]) == 0
    mem, disk = _record(tmp_path / "mem.md"), _record(tmp_path / "disk.md")
    stages = {r["stage"].split(" (")[0]: r for r in disk["rows"]}
    assert list(stages) == ["checkpoint", "load", "plan", "surgery into memory", "surgery", "reload", "forward"]
    assert stages["surgery"]["equals_in_memory"] is True  # the product's surgery (prune --offload-folder) cuts the same
    assert stages["surgery into memory"]["params"] == disk["planned"]
    assert stages["load"]["offloaded"] is True
    assert stages["reload"]["equals_plan"] is True and stages["forward"]["finite"] is True
    cut = stages["surgery"]
    assert cut["blocks_dropped"] > 0 and cut["blocks_linear"] > 0  # the renaming and the maps are exercised
    for key in ("evaluations", "forward_equivalents", "final_error"):
        assert disk["plan_search"][key] == mem["plan_search"][key]
    assert disk["params_after"] == disk["planned"] == mem["planned"]

    # the same weights: the in-memory surgery's single file against the streamed surgery's shards
    ref = load_file(str(tmp_path / "mem" / "model.safetensors"))
    index = json.loads((tmp_path / "disk" / "pruned" / script.INDEX).read_text())["weight_map"]
    got = {}
    for shard in sorted(set(index.values())):
        got.update(load_file(str(tmp_path / "disk" / "pruned" / shard)))
    assert sorted(got) == sorted(ref)
    assert all(torch.equal(got[k], ref[k]) for k in ref)
    # the unpruned checkpoint is the in-memory run's model: from_pretrained reads it as a diffusers checkpoint
    assert (tmp_path / "disk" / "checkpoint" / "config.json").exists()
    assert not (tmp_path / "disk" / "offload-search").exists()  # removed once the plan is made
