"""Pruning: the unit tree, budgets, Plans, size accounting and surgery that every pruner (TMP and
baselines) shares, and the runner that drives them.

The arrows, one per module::

    model --tree.build_unit_tree--> UnitTree --(a pruner's strategy)--> plan.Plan
          --surgery.apply_plan--> pruned model --budget.check_achieved--> BudgetReport

Modules, low to high:

* ``tree`` / ``hunyuan_tree``: the unit trees of Z-Image DiTs and HunyuanImage-3.0 decoders;
* ``plan``: the Plan, plain versioned data; ``budget``: what "prune to X" means and its check;
* ``surgery``: cutting heads, channels, experts and blocks; ``families``: which tree and surgery a
  model's layout takes; ``accounting``: the one size arithmetic (what a Plan leaves);
* ``calibration`` (captured denoiser inputs, masks' data, linear-map fits), ``recovery``
  (distillation), ``recipes`` (the calibration spec and recovery recipe every pruner shares);
* ``factory``: pruner names to strategies through the registry; ``io``: pruned folders on disk;
* ``runner``: plan / prune / prune-all; ``cache``: the pruned-model cache of ``tmpbench run``.

Scoring and strategy live with the pruners (``pruners/``); this package decides nothing. See
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
