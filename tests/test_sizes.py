"""The one size grammar: model specs and budgets read `4b` and `33%` through it and agree."""

from __future__ import annotations

import pytest

from tmpbench.models.spec import ModelSpec
from tmpbench.pruning.budget import Budget
from tmpbench.sizes import Size, parse_size


@pytest.mark.parametrize(
    "text, number, unit",
    [("4b", 4.0, "b"), ("4B", 4.0, "b"), ("500m", 500.0, "m"), ("1.5b", 1.5, "b"), (".5t", 0.5, "t"),
     ("2e10", 2e10, ""), ("250 k", 250.0, "k"), ("33%", 33.0, "%"), ("12.5%", 12.5, "%")],
)
def test_parse_size(text, number, unit):
    assert parse_size(text) == Size(number, unit)


@pytest.mark.parametrize("text", ["", "b", "four", "-5%", "4q", "4bb", "5ms", "1e", "%"])
def test_not_a_size(text):
    assert parse_size(text) is None


def test_amounts_and_shares():
    assert parse_size("1.5b").amount == 1.5e9 and parse_size("2g").amount == 2e9 and parse_size("7").amount == 7.0
    assert parse_size("33%").removed_share == 0.33 and parse_size("33%").is_ratio
    with pytest.raises(ValueError, match="share removed, not an absolute amount"):
        parse_size("33%").amount
    with pytest.raises(ValueError, match="absolute amount, not a share removed"):
        parse_size("4b").removed_share


@pytest.mark.parametrize("size", ["4b", "500m", "1.5b", "25%", "12.5%", "2g"])
def test_specs_and_budgets_agree(size):
    nominal = 6_154_908_736
    budget = Budget.parse(size)
    target = ModelSpec("zimage", size, "tmp").target_params(nominal)
    assert target == round(budget.target(nominal))


def test_a_spec_needs_the_unit():
    from tmpbench.errors import TmpbenchError
    from tmpbench.models.spec import parse_spec

    assert parse_spec("zimage-2G") == ModelSpec("zimage", "2g", "tmp")
    with pytest.raises(TmpbenchError, match=r"bad model spec 'zimage-2': expected NAME\[-SIZE\]"):
        parse_spec("zimage-2")
