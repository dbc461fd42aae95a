"""The Plan: a pruner's decisions as plain data, to print, diff, save beside the weights and replay.

A Plan says which node of the unit tree gets which policy and which unit indices survive. It holds
no tensors: a fitted linear map (``linear_replace``) is described here and its weights travel
beside the Plan (``apply_plan(..., linear_maps={path: (weight, bias)})``).

Decision forms, by policy (``path`` is a module path from the unit tree)::

    drop_block      path="layers.7"
    linear_replace  path="layers.8", linear={"dim": 64, "fit": "lstsq", ...}
    prune_heads     path="layers.3.attention",    keep=[0, 2, 3]        kept head ids
    prune_channels  path="layers.3.feed_forward", keep=[...]            kept channel ids
    prune_experts   path="layers.3.feed_forward", keep=[0, 1, 5]        kept expert ids
    merge_experts   path="layers.3.feed_forward", groups=[[0, 4], [1], [2, 3]], weights=[...]

Indices always refer to the ORIGINAL model; ``apply_plan`` replays width cuts first and block
removals last so later decisions never see shifted indices.

On disk (format version 2, ``"version": 2``) a decision's ``keep`` is a range string: comma-separated
ascending, non-overlapping INCLUSIVE ranges ``start-stop``, a single id written alone, the empty list
as ``""``. ``[0, 1, 2, 5, 7, 8]`` is ``"0-2,5,7-8"``; HunyuanImage-3.0's ~130k kept expert channels per
layer take a few dozen characters instead of a number per line. In memory ``keep`` stays a list of
ints; only :meth:`Plan.to_dict` / :meth:`Plan.from_dict` know the string. ``groups`` and ``weights``
stay JSON lists (at most one entry per expert). Version 1 files (``keep`` as a list of ints) still
load; ``to_json(version=1)`` writes one, for size comparisons.

``to_json()`` is canonical: keys sorted, decisions in natural path order, ranges maximal. ``save``
writes exactly ``to_json() + "\n"``, so a plan's provenance hash (``plan_sha256``: sha256 of a pruned
folder's ``plan.json``, see :func:`tmpbench.pruning.io.folder_provenance`) is the hash of its
canonical version-2 text and is the same whenever the same plan is saved.

Example::

    >>> plan = Plan(model={"class": "ZImageTransformer2DModel"}, budget={"text": "33%"}, pruner="random",
    ...             decisions=[Decision("layers.1", "drop_block")], original_params=100, achieved_params=60)
    >>> Plan.from_json(plan.to_json()) == plan
    True
    >>> encode_ids([0, 1, 2, 5, 7, 8]), decode_ids("0-2,5,7-8", 10, "keep")
    ('0-2,5,7-8', [0, 1, 2, 5, 7, 8])
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tmpbench.errors import DataFormatError, TmpbenchError, did_you_mean
from tmpbench.pruning.tree import POLICIES

PLAN_VERSION = 2
READABLE_VERSIONS = (1, 2)
WIDTH_POLICIES = ("prune_heads", "prune_channels", "prune_experts")
BLOCK_POLICIES = ("drop_block", "linear_replace")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int_list(v: Any) -> bool:
    return isinstance(v, list) and all(_is_int(i) for i in v)


_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")


def encode_ids(ids: list[int], what: str = "keep") -> str:
    """Sorted unique non-negative ids as the version-2 range string (inclusive ranges, see the module
    docstring): ``[0, 1, 2, 5, 7, 8]`` -> ``"0-2,5,7-8"``, ``[]`` -> ``""``. Raises TmpbenchError (naming
    ``what``) for ids the string cannot hold: negative, unsorted or repeated."""
    parts: list[str] = []
    start = prev = None
    for i in ids:
        if prev is not None and i <= prev:
            raise TmpbenchError(f"{what}: keep must be sorted and unique to be written, got {prev} then {i}")
        if prev is None and i < 0:
            raise TmpbenchError(f"{what}: keep holds the negative id {i}; ids count from 0")
        if prev is None or i != prev + 1:
            if start is not None:
                parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = i
        prev = i
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(parts)


def decode_ids(text: str, count: int | None, what: str) -> list[int]:
    """The ids of a version-2 range string, checked: every range ``start`` or ``start-stop`` of
    non-negative integers with start <= stop, ranges ascending without overlap, and (where ``count``,
    the decision's ``original_count``, is known) every id below ``count``. One-line DataFormatError
    naming ``what`` (the decision) and the range otherwise."""
    if text == "":
        return []
    ids: list[int] = []
    previous = None
    for part in text.split(","):
        m = _RANGE.fullmatch(part)
        if m is None:
            raise DataFormatError(
                f"{what}: keep range {part!r} is not an integer id or an inclusive 'start-stop' of integer ids"
            )
        start = int(m[1])
        stop = int(m[2]) if m[2] is not None else start
        if start > stop:
            raise DataFormatError(f"{what}: keep range {part!r} starts after it stops; write it as '{stop}-{start}'")
        if ids and start <= ids[-1]:
            raise DataFormatError(
                f"{what}: keep range {part!r} overlaps or precedes {previous!r}; ranges must ascend without overlap"
            )
        if count is not None and stop >= count:
            raise DataFormatError(f"{what}: keep range {part!r} is out of bounds for {count} units (ids 0..{count - 1})")
        ids.extend(range(start, stop + 1))
        previous = part
    return ids


# field -> (test, what the JSON must hold); None is allowed where the field's default is None
_PLAN_TYPES: dict[str, tuple[Any, str]] = {
    "model": (lambda v: isinstance(v, dict), "an object"),
    "budget": (lambda v: isinstance(v, dict), "an object"),
    "pruner": (lambda v: isinstance(v, str), "a string"),
    "decisions": (lambda v: isinstance(v, list), "a list"),
    "original_params": (_is_int, "an integer"),
    "achieved_params": (_is_int, "an integer"),
    "original_flops": (lambda v: v is None or _is_number(v), "a number or null"),
    "achieved_flops": (lambda v: v is None or _is_number(v), "a number or null"),
    "settings": (lambda v: isinstance(v, dict), "an object"),
    "calibration": (lambda v: isinstance(v, dict), "an object"),
}
_DECISION_TYPES: dict[str, tuple[Any, str]] = {
    "path": (lambda v: isinstance(v, str), "a string"),
    "policy": (lambda v: isinstance(v, str), "a string"),
    "groups": (lambda v: v is None or (isinstance(v, list) and all(_int_list(g) for g in v)), "a list of integer lists or null"),
    "weights": (lambda v: v is None or (isinstance(v, list) and all(_is_number(w) for w in v)), "a list of numbers or null"),
    "merge_router": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "linear": (lambda v: v is None or isinstance(v, dict), "an object or null"),
    "original_count": (lambda v: v is None or _is_int(v), "an integer or null"),
    "info": (lambda v: isinstance(v, dict), "an object"),
}


# "keep" by plan version: v1 lists the ids, v2 writes ranges (see the module docstring)
_KEEP_TYPES: dict[int, tuple[Any, str]] = {
    1: (lambda v: v is None or _int_list(v), "a list of integers or null (version 1)"),
    2: (lambda v: v is None or isinstance(v, str),
        "a range string like '0-127,130-255' or null (version 2; a version 1 plan lists the ids and says \"version\": 1)"),
}


def _check_types(data: dict[str, Any], types: dict[str, tuple[Any, str]], where: str) -> None:
    for key, (ok, what) in types.items():
        if key in data and not ok(data[key]):
            raise DataFormatError(f"{where}: {key!r} must be {what}, got {type(data[key]).__name__}")


@dataclass
class Decision:
    """One node's fate. Exactly the fields its policy needs are set (see the module docstring)."""

    path: str
    policy: str
    keep: list[int] | None = None  # kept unit ids (heads / channels / experts), sorted
    groups: list[list[int]] | None = None  # merge_experts: a partition of all expert ids
    weights: list[float] | None = None  # merge_experts: per-expert averaging weight (e.g. routing frequency)
    merge_router: str | None = None  # merge_experts: "lse" (default) or "max", see surgery.merge_experts
    linear: dict[str, Any] | None = None  # linear_replace: description of the fitted map (no tensors)
    original_count: int | None = None  # units before pruning (heads, channels, experts), for diffs
    info: dict[str, Any] = field(default_factory=dict)  # free-form: scores, reasons

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            hint = did_you_mean(self.policy, POLICIES, n=1, cutoff=0.6) or f"; expected one of {', '.join(POLICIES)}"
            raise TmpbenchError(f"decision at {self.path!r}: unknown policy {self.policy!r}{hint}")
        if self.keep is not None:
            self.keep = [int(i) for i in self.keep]
        if self.groups is not None:
            self.groups = [[int(i) for i in g] for g in self.groups]
        if self.policy in WIDTH_POLICIES and self.keep is None:
            raise TmpbenchError(f"decision {self.policy} at {self.path!r} needs keep=[...] (the kept unit ids)")
        if self.policy == "merge_experts" and not self.groups:
            raise TmpbenchError(f"decision merge_experts at {self.path!r} needs groups=[[...], ...]")

    @property
    def summary(self) -> str:
        """One line: ``layers.3.attention prune_heads keep 3/4``."""
        if self.keep is not None:
            of = f"/{self.original_count}" if self.original_count is not None else ""
            return f"{self.path} {self.policy} keep {len(self.keep)}{of}"
        if self.groups is not None:
            return f"{self.path} {self.policy} {len(self.groups)} groups {self.groups}"
        return f"{self.path} {self.policy}"


@dataclass
class Plan:
    """Everything needed to reproduce and audit one pruning run, as JSON-ready data.

    ``to_json``/``save`` write format version 2 (``"version": 2``; kept ids as inclusive range strings
    such as ``"0-127,130-255"``, see the module docstring); ``from_dict``/``load`` read versions 1 and 2.
    """

    model: dict[str, Any]  # identity: name, class, config hash (see model_identity)
    budget: dict[str, Any]  # Budget.to_dict(): text, kind, value, is_ratio, resolution
    pruner: str
    decisions: list[Decision] = field(default_factory=list)
    original_params: int = 0
    achieved_params: int = 0
    original_flops: float | None = None
    achieved_flops: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # pruner knobs (tree_depth, policy_mix, seed...)
    calibration: dict[str, Any] = field(default_factory=dict)  # identity of the calibration set (name, hash, n)
    # no version field: the in-memory Plan is the same for every format; to_dict writes "version"

    def __post_init__(self) -> None:
        self.decisions = sorted(
            (d if isinstance(d, Decision) else Decision(**d) for d in self.decisions), key=_decision_key
        )

    # --- serialisation -----------------------------------------------------------------------
    def to_dict(self, version: int = PLAN_VERSION) -> dict[str, Any]:
        """JSON-ready data in format ``version`` (2: kept ids as range strings; 1: as lists)."""
        if version not in READABLE_VERSIONS:
            raise TmpbenchError(f"plan version {version} cannot be written; choose one of {list(READABLE_VERSIONS)}")
        data = asdict(self)
        data["version"] = version
        if version >= 2:
            for out, d in zip(data["decisions"], self.decisions):
                if d.keep is not None:
                    out["keep"] = encode_ids(d.keep, f"decision {d.policy} at {d.path!r}")
        return data

    def to_json(self, indent: int | None = 2, version: int = PLAN_VERSION) -> str:
        """Canonical JSON: keys sorted, decisions in natural path order, ranges maximal (what
        ``save`` writes and ``plan_sha256`` hashes)."""
        return json.dumps(self.to_dict(version), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """A Plan from version 1 or 2 data (no ``version`` key: the current one), strictly checked."""
        if not isinstance(data, dict):
            raise DataFormatError(f"a plan must be a JSON object, got {type(data).__name__}")
        version = data.get("version", PLAN_VERSION)
        if not _is_int(version) or version not in READABLE_VERSIONS:
            raise DataFormatError(
                f"plan version {version} is not supported (this tmpbench reads versions {list(READABLE_VERSIONS)})"
            )
        known = {f.name for f in fields(cls)} | {"version"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DataFormatError(f"plan has unknown fields {unknown}; expected only {sorted(known)}")
        missing = [k for k in ("model", "budget", "pruner") if k not in data]
        if missing:
            raise DataFormatError(f"plan lacks required fields {missing}")
        _check_types(data, _PLAN_TYPES, "plan")
        dec_fields = {f.name for f in fields(Decision)}
        decisions = []
        for i, d in enumerate(data.get("decisions", [])):
            if not isinstance(d, dict):
                raise DataFormatError(f"plan decision {i} must be an object, got {type(d).__name__}")
            bad = sorted(set(d) - dec_fields)
            if bad:
                raise DataFormatError(f"plan decision {i} has unknown fields {bad}")
            missing = [k for k in ("path", "policy") if k not in d]
            if missing:
                raise DataFormatError(f"plan decision {i} lacks required fields {missing}")
            where = f"plan decision {i} at {d['path']!r}" if isinstance(d["path"], str) else f"plan decision {i}"
            _check_types(d, {**_DECISION_TYPES, "keep": _KEEP_TYPES[version]}, where)
            if version >= 2 and d.get("keep") is not None:
                d = {**d, "keep": decode_ids(d["keep"], d.get("original_count"), where)}
            decisions.append(Decision(**d))
        return cls(**{k: v for k, v in data.items() if k not in ("version", "decisions")}, decisions=decisions)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"plan is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        path = Path(path)
        if not path.is_file():
            raise TmpbenchError(f"plan file {str(path)!r} does not exist")
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise DataFormatError(f"{path}: plan is not UTF-8 JSON text") from None
        except DataFormatError as exc:
            raise DataFormatError(f"{path}: {exc}") from None

    # --- views ----------------------------------------------------------------------------------
    def by_path(self) -> dict[tuple[str, str], Decision]:
        return {(d.path, d.policy): d for d in self.decisions}

    def summary(self) -> str:
        """Human-readable multi-line view, for ``tmpbench plan`` without --json."""
        ratio = 1 - self.achieved_params / self.original_params if self.original_params else 0.0
        head = (
            f"plan by {self.pruner} for {self.model.get('name') or self.model.get('class', '?')} under budget "
            f"{self.budget.get('text', '?')}: {self.original_params:,} -> {self.achieved_params:,} params "
            f"({ratio:.1%} removed), {len(self.decisions)} decisions"
        )
        return "\n".join([head] + [f"  {d.summary}" for d in self.decisions])


def _natural(path: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.#]", path))


def _decision_key(d: Decision) -> tuple:
    return (_natural(d.path), POLICIES.index(d.policy))


def diff(a: Plan, b: Plan) -> list[str]:
    """Differences from plan ``a`` to plan ``b``, one line each ("-" only in a, "+" only in b,
    "~" changed). Empty when the plans decide the same things."""
    lines: list[str] = []
    for name in ("model", "budget", "pruner", "original_params", "achieved_params", "settings", "calibration"):
        va, vb = getattr(a, name), getattr(b, name)
        if va != vb:
            lines.append(f"~ {name}: {json.dumps(va, sort_keys=True)} -> {json.dumps(vb, sort_keys=True)}")
    da, db = a.by_path(), b.by_path()
    for key in sorted(set(da) | set(db), key=lambda k: (_natural(k[0]), POLICIES.index(k[1]))):
        x, y = da.get(key), db.get(key)
        if y is None:
            lines.append(f"- {x.summary}")
        elif x is None:
            lines.append(f"+ {y.summary}")
        elif x != y:
            parts = []
            if x.keep != y.keep:
                sa, sb = set(x.keep or []), set(y.keep or [])
                parts.append(f"keep {len(sa)} -> {len(sb)} (dropped {sorted(sa - sb)}, added {sorted(sb - sa)})")
            for attr in ("groups", "weights", "merge_router", "linear", "original_count", "info"):
                if getattr(x, attr) != getattr(y, attr):
                    parts.append(f"{attr} {getattr(x, attr)} -> {getattr(y, attr)}")
            lines.append(f"~ {key[0]} {key[1]}: " + "; ".join(parts))
    return lines


def model_identity(model: Any, name: str | None = None) -> dict[str, Any]:
    """Identity of an (unpruned) model for a Plan: registry name, class and a hash of its config.

    Reads only the config (diffusers ``model.config`` or transformers ``config.to_dict()``), so it
    works on meta-device models.
    """
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        cfg = config.to_dict()
    elif config is not None:
        cfg = dict(config)
    else:
        cfg = {}
    cfg = {k: v for k, v in cfg.items() if not str(k).startswith("_")}
    blob = json.dumps(cfg, sort_keys=True, default=str)
    return {
        "name": name,
        "class": type(model).__name__,
        "config_sha256": hashlib.sha256(blob.encode()).hexdigest()[:16],
    }


def validate_plan(plan: Plan, tree: Any) -> None:
    """Check a Plan against the unit tree of the model it will be applied to.

    Raises TmpbenchError (one line) for a path the tree lacks, a policy the node does not admit,
    out-of-range or unsorted indices, a constraint violation (top-k > kept experts, GQA groups), or
    decisions that conflict (a block both dropped and width-pruned).
    """
    cls = plan.model.get("class")
    if cls and cls != tree.model_class:
        raise TmpbenchError(f"plan is for {cls} but the model is {tree.model_class}; plan it for this model")
    seen: dict[str, str] = {}
    removed_blocks: set[str] = set()
    for d in plan.decisions:
        channels = tree.expert_channels(d.path)
        if channels is not None:
            _check_expert_channels(d, channels)
            seen[d.path] = d.policy
            continue
        node = tree[d.path]
        if d.policy not in node.policies:
            admitted = ", ".join(node.policies) or "none"
            raise TmpbenchError(
                f"policy {d.policy!r} is not admitted at {d.path!r} ({node.kind}); it admits: {admitted}"
            )
        if d.path in seen:
            raise TmpbenchError(f"{d.path!r} has two decisions ({seen[d.path]} and {d.policy}); keep one")
        seen[d.path] = d.policy
        if d.policy in BLOCK_POLICIES:
            removed_blocks.add(d.path)
            continue
        unit = node.children[0] if node.children else None
        count = unit.count if unit is not None else 0
        if d.keep is not None:
            check_indices(d.keep, count, f"{d.policy} at {d.path!r}")
            c = node.constraints
            if d.policy == "prune_experts" and len(d.keep) < c.get("top_k", 1):
                raise TmpbenchError(
                    f"prune_experts at {d.path!r} keeps {len(d.keep)} experts but top_k is {c['top_k']}; keep at least {c['top_k']}"
                )
            if d.policy == "prune_heads" and len(d.keep) % c.get("kept_heads_multiple_of", 1):
                raise TmpbenchError(
                    f"prune_heads at {d.path!r} keeps {len(d.keep)} heads; GQA needs a multiple of kv_heads={c['kv_heads']}"
                )
        if d.groups is not None:
            check_groups(d.groups, count, f"merge_experts at {d.path!r}")
            if len(d.groups) < node.constraints.get("top_k", 1):
                raise TmpbenchError(
                    f"merge_experts at {d.path!r} leaves {len(d.groups)} experts but top_k is {node.constraints['top_k']}"
                )
    merged = {d.path for d in plan.decisions if d.policy == "merge_experts"}
    for d in plan.decisions:
        channels = tree.expert_channels(d.path)
        if channels is not None and channels.constraints["moe"] in merged:
            raise TmpbenchError(
                f"plan merges the experts of {channels.constraints['moe']!r} and also cuts their channels ({d.path!r}); "
                "merged experts average channel j of each member, so the members must keep the same channels: prune "
                "the experts instead, or keep their width"
            )
    for path in seen:
        for block in removed_blocks:
            if path != block and path.startswith(block + "."):
                raise TmpbenchError(f"{path!r} is inside {block!r}, which the plan removes; drop one of the two decisions")


def _check_expert_channels(d: Decision, node: Any) -> None:
    """A routed-expert channels decision: prune_channels with flat ids, the same count per expert."""
    what = f"{d.policy} at {d.path!r}"
    if d.policy != "prune_channels":
        raise TmpbenchError(f"policy {d.policy!r} is not admitted at {d.path!r} (routed expert channels); it admits: prune_channels")
    experts, width = int(node.constraints["experts"]), node.count
    check_indices(d.keep or [], experts * width, f"{what} (ids are expert * {width} + channel)")
    per = [0] * experts
    for i in d.keep:
        per[i // width] += 1
    if len(set(per)) != 1:
        raise TmpbenchError(f"{what}: experts keep {min(per)}..{max(per)} channels; every expert must keep the same number")


def check_indices(keep: list[int], count: int, what: str) -> None:
    """Kept indices must be sorted, unique, within [0, count) and not empty (one-line errors)."""
    if not keep:
        raise TmpbenchError(f"{what}: keep is empty; at least one unit must survive")
    if any(not isinstance(i, int) or isinstance(i, bool) for i in keep):
        raise TmpbenchError(f"{what}: keep must hold integers, got {keep[:8]}")
    if any(b <= a for a, b in zip(keep, keep[1:])):
        raise TmpbenchError(f"{what}: keep must be sorted and unique, got {keep[:8]}{'...' if len(keep) > 8 else ''}")
    if keep[0] < 0 or keep[-1] >= count:
        raise TmpbenchError(f"{what}: index {keep[0] if keep[0] < 0 else keep[-1]} is out of range for {count} units")


def check_groups(groups: list[list[int]], count: int, what: str) -> None:
    """Merge groups must partition range(count): every expert in exactly one non-empty group."""
    flat = [i for g in groups for i in g]
    if any(not g for g in groups):
        raise TmpbenchError(f"{what}: a merge group is empty")
    if sorted(flat) != list(range(count)):
        dup = sorted({i for i in flat if flat.count(i) > 1})
        missing = sorted(set(range(count)) - set(flat))
        extra = sorted(i for i in set(flat) if not 0 <= i < count)
        raise TmpbenchError(
            f"{what}: groups must cover each of the {count} experts exactly once "
            f"(duplicated {dup}, missing {missing}, out of range {extra})"
        )
