"""Pruning: the unit tree, budgets, Plans and surgery that every pruner (TMP and baselines) shares.

The arrows, one per module::

    model --tree.build_unit_tree--> UnitTree --(a pruner's strategy)--> plan.Plan
          --surgery.apply_plan--> pruned model --budget.check_achieved--> BudgetReport

Scoring and strategy live with the pruners; this package decides nothing. See
docs/pruning-design.md.
"""

from tmpbench.pruning.budget import Budget, BudgetReport, check_achieved, original_for_tree
from tmpbench.pruning.plan import Decision, Plan, diff, model_identity, validate_plan
from tmpbench.pruning.surgery import (
    LinearBlock,
    apply_plan,
    drop_block,
    fit_linear_map,
    merge_experts,
    prune_expert_channels,
    prune_experts,
    prune_ffn_channels,
    prune_heads,
    replace_with_linear,
)
from tmpbench.pruning.tree import POLICIES, UnitNode, UnitTree, build_unit_tree, format_tree

__all__ = [
    "POLICIES",
    "Budget",
    "BudgetReport",
    "Decision",
    "LinearBlock",
    "Plan",
    "UnitNode",
    "UnitTree",
    "apply_plan",
    "build_unit_tree",
    "check_achieved",
    "diff",
    "drop_block",
    "fit_linear_map",
    "format_tree",
    "merge_experts",
    "model_identity",
    "original_for_tree",
    "prune_expert_channels",
    "prune_experts",
    "prune_ffn_channels",
    "prune_heads",
    "replace_with_linear",
    "validate_plan",
]
