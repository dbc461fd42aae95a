"""Pure maths of the run: sample seeds, generation groups and their shards, OneIG grids."""

import numpy as np
import pytest

from tmpbench.errors import TmpbenchError
from tmpbench.run.generate import make_grid, plan_groups, sample_seed, shard_groups, split_grid


def test_sample_seeds_groups_and_shards():
    assert sample_seed(5, 0) == 5 and sample_seed(5, 1) == 5 + 1_000_003
    assert sample_seed(2**31 - 1, 1) < 2**31
    groups = plan_groups(10, seeds=2, batch_size=4)
    assert groups == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    parts = [shard_groups(groups, r, 2) for r in range(2)]
    assert parts == [[0, 2, 4], [1, 3]]
    with pytest.raises(TmpbenchError, match="--batch-size must be at least 1"):
        plan_groups(3, 1, 0)


def test_grid_round_trip():
    from PIL import Image

    cells = [Image.fromarray(np.full((8, 8, 3), 40 * k, np.uint8)) for k in range(4)]
    back = split_grid(np.asarray(make_grid(cells)))
    assert [int(c[0, 0, 0]) for c in back] == [0, 40, 80, 120]
