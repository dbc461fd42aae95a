"""`tmpbench fid DIR1 DIR2`: sanity values and one-line errors."""

import json

import numpy as np


def test_fid_self_seeds_noise(tmp_path, run_cli, renders, image_folder):
    a = image_folder(tmp_path / "a", renders(1, 10), "geneval")
    b = image_folder(tmp_path / "b", renders(2, 10), "flat")
    noise = image_folder(tmp_path / "n", list(np.random.default_rng(0).integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)), "flat")
    results = {}
    for name, other in (("self", a), ("seeds", b), ("noise", noise)):
        code, out, err = run_cli("fid", str(a), str(other), "--mode", "shapes", "--json", "--kid-subsets", "5")
        assert code == 0, err
        results[name] = json.loads(out)
    assert abs(results["self"]["fid"]) < 1e-5
    assert 0 < results["seeds"]["fid"] < 20
    assert results["noise"]["fid"] > 100 * results["seeds"]["fid"]
    assert results["seeds"]["identity"]["mode"] == "shapes" and results["seeds"]["n2"] == 60
    code, out, _ = run_cli("fid", str(a), str(b))  # text output, default mode shapes
    assert code == 0 and out.startswith("fid: ") and "mode: shapes" in out


def test_fid_errors_are_one_line(tmp_path, run_cli, renders, image_folder, no_weight_env):
    a = image_folder(tmp_path / "a", renders(1, 1), "flat")
    code, out, err = run_cli("fid", str(a), str(a), "--mode", "shape")
    assert code == 2 and err.count("\n") == 1
    assert "unknown feature mode 'shape'; did you mean 'shapes'?" in err
    code, _, err = run_cli("fid", str(a), str(a), "--mode", "inception", "--weights", str(tmp_path / "inception-2015-12-05.pt"))
    assert code == 2 and err.count("\n") == 1 and "not found at" in err
    code, _, err = run_cli("fid", str(a), str(tmp_path / "missing"))
    assert code == 2 and err.strip() == f"error: image folder {tmp_path / 'missing'} does not exist"
