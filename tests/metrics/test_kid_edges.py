"""KID's edges (issue 15): too few images or subsets are one line; equal small sets use one subset."""

import json

import numpy as np
import pytest

from tmpbench.errors import TmpbenchError
from tmpbench.metrics.fid import KID_NOTE, kernel_distance, kid_subset_plan


def test_one_image_per_folder_is_one_line(tmp_path, run_cli, renders, image_folder):
    a = image_folder(tmp_path / "a", renders(1, 1)[:1], "flat")
    code, _, err = run_cli("fid", str(a), str(a))
    assert code == 2 and err.count("\n") == 1, err
    assert "KID needs at least 2 images per side, got 1 and 1; add images" in err


def test_zero_subsets_is_one_line(tmp_path, run_cli, renders, image_folder):
    a = image_folder(tmp_path / "a", renders(1, 4), "flat")
    code, _, err = run_cli("fid", str(a), str(a), "--kid-subsets", "0")
    assert code == 2 and err.strip() == "error: --kid-subsets 0 must be at least 1"


def test_equal_small_sets_use_one_subset_and_explain_the_sign(tmp_path, run_cli, renders, image_folder):
    a = image_folder(tmp_path / "a", renders(1, 2), "flat")
    code, out, err = run_cli("fid", str(a), str(a), "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["kid_std"] is None and res["kid_subsets"] == 1 and res["kid_subset_size"] == 12
    assert res["kid_mean"] < 0  # a folder against itself: the unbiased estimate is negative
    assert "equals both set sizes" in res["kid_subset_note"] and res["kid_note"] == KID_NOTE
    code, out, _ = run_cli("fid", str(a), str(a))
    assert code == 0 and "(one subset: the subset size 12 equals both set sizes" in out and "+-" not in out.splitlines()[1]
    assert "kid note: KID is the unbiased estimate of MMD^2" in out and "can be negative" in out


def test_unequal_sets_keep_random_subsets(tmp_path, run_cli, renders, image_folder):
    a = image_folder(tmp_path / "a", renders(1, 2), "flat")
    b = image_folder(tmp_path / "b", renders(2, 3), "flat")
    code, out, err = run_cli("fid", str(a), str(b), "--json", "--kid-subsets", "5")
    assert code == 0, err
    res = json.loads(out)
    assert res["kid_subsets"] == 5 and res["kid_subset_size"] == 12 and res["kid_std"] > 0 and res["kid_subset_note"] is None


@pytest.mark.parametrize(("n1", "n2", "subsets", "want"), [
    (48, 48, 100, (48, 1)), (48, 60, 100, (48, 100)), (2000, 2000, 7, (1000, 7)), (2, 2, 3, (2, 1)),
])
def test_kid_subset_plan(n1, n2, subsets, want):
    size, k, note = kid_subset_plan(n1, n2, subsets)
    assert (size, k) == want and (note is not None) == (n1 == n2 <= 1000)


@pytest.mark.parametrize(("n1", "n2", "subsets", "match"), [
    (1, 5, 10, r"at least 2 images per side, got 1 and 5"), (5, 5, 0, r"--kid-subsets 0 must be at least 1"),
    (5, 5, -3, r"--kid-subsets -3 must be at least 1"),
])
def test_kid_subset_plan_refuses(n1, n2, subsets, match):
    with pytest.raises(TmpbenchError, match=match):
        kid_subset_plan(n1, n2, subsets)


def test_self_kid_is_negative_by_construction():
    """x against itself: 2(S - m T)/(m^2 (m-1)) < 0 when the diagonal beats the mean kernel entry."""
    x = np.random.default_rng(0).normal(size=(16, 8))
    mean, _ = kernel_distance(x, x, subsets=1, subset_size=16)
    g = 1.0 / 8
    k = (x @ x.T * g + 1.0) ** 3
    m, S, T = 16, k.sum(), np.trace(k)
    assert mean == pytest.approx(2 * (S - m * T) / (m * m * (m - 1))) and mean < 0
