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

On disk a decision's ``keep`` is a string in one of two forms (in memory it stays a list of ints; only
:meth:`Plan.to_dict` / :meth:`Plan.from_dict` know the strings):

* **Range string** (format version 2): comma-separated ascending, non-overlapping INCLUSIVE ranges
  ``start-stop``, a single id written alone, the empty list as ``""``. ``[0, 1, 2, 5, 7, 8]`` is
  ``"0-2,5,7-8"``; HunyuanImage-3.0's ~130k kept expert channels per layer take a few dozen characters.
* **Rice-coded id set** (format version 3): ``"rice<K>:<kept|drop><N>:<base64>"``, for ids scattered so
  finely that ranges are long (a ``random`` plan has about three runs per four kept ids). ``kept``: the N coded
  ids are the kept ones; ``drop``: they are the removed ones and ``keep`` is the rest of
  ``range(original_count)``. With the coded ids ``x_0 < ... < x_{N-1}`` and gaps
  ``d_j = x_j - x_{j-1} - 1`` (``x_{-1} = -1``), the bit string is the N remainders ``d_j mod 2**K``
  (K bits each, most significant first), then the N quotients ``d_j >> K`` in unary (that many 1 bits,
  then a 0), then 0 bits to the byte; bytes in standard padded base64 (RFC 4648), most significant bit
  of each byte first. The gaps of a uniformly random id set are geometric, for which a Rice code with the
  best K is within a few percent of the entropy: 0.80 bits per unit where 24% of the ids are kept (entropy
  0.79), where a plain bitmap costs 1 bit per unit. For HunyuanImage-3.0's random 20B plan that is 0.88 MB
  against 1.09 MB with bitmaps, over the 1 MB the plan must fit (``reports/plan-format/sizes.md``). A
  bitmap would be simpler; deflate would fit too, but its bytes depend on the zlib build, so the
  canonical text (and the hash) would depend on the machine. ``[1, 5, 6, 7]`` coded as
  kept ids with K=0 is ``"rice0:kept4:uA=="``: gaps 1, 3, 0, 0 are the bits ``10 1110 0 0``, one byte 0xB8.

  A coded keep needs the decision's ``original_count``. Reading refuses, in one line naming the decision:
  a string that is neither form; K above 30; N above the count; base64 that is not canonical; a bit
  string holding fewer than N codes, or anything but fewer than 8 zero bits after the N-th (bits past the
  set); an id at or above ``original_count``.

The writer picks, per decision, the shorter of the two forms; a coded form only when strictly shorter
than the ranges (then the shortest: ``kept`` before ``drop``, smaller K first, on ties), and only where
``original_count`` is known. ``groups`` and ``weights`` stay JSON lists (at most one entry per expert).

**Versions.** Version 3 is version 2 plus the coded form, and ``to_json()`` writes the LOWEST version that
holds the plan's canonical text: ``"version": 2`` when every decision's ranges are its shortest form (every
contiguous plan: its text, and so its hash, is what it was before version 3 existed), ``"version": 3``
when some decision is coded. Why not keep calling it version 2 (a reader extension): a tmpbench from before
the coded form would refuse such a file with a misleading "keep range 'rice1:...' is not an integer id";
with version 3 it says "plan version 3 is not supported", which is true, and it still reads every plan that
has no coded decision. Why not always write 3: every plan's canonical text, and so every ``plan_sha256``,
would change for no gain. A version-2 file with a coded keep is refused (it names version 3). Version 1
files (``keep`` as a list of ints) still load; ``to_json(version=1)`` writes one, and
``to_json(version=2)`` a ranges-only file, for size comparisons. A file without ``"version"`` is read as
version 3 (both forms).

``to_json()`` is canonical: keys sorted, decisions in natural path order, ranges maximal, the form and K
chosen as above. ``save`` writes exactly ``to_json() + "\n"``, so a plan's provenance hash
(``plan_sha256``: sha256 of a pruned folder's ``plan.json``, see
:func:`tmpbench.pruning.io.folder_provenance`) is the hash of its canonical text and is the same whenever
the same plan is saved.

Example::

    >>> plan = Plan(model={"class": "ZImageTransformer2DModel"}, budget={"text": "33%"}, pruner="random",
    ...             decisions=[Decision("layers.1", "drop_block")], original_params=100, achieved_params=60)
    >>> Plan.from_json(plan.to_json()) == plan
    True
    >>> encode_ids([0, 1, 2, 5, 7, 8]), decode_ids("0-2,5,7-8", 10, "keep")
    ('0-2,5,7-8', [0, 1, 2, 5, 7, 8])
    >>> decode_keep("rice0:kept4:uA==", 10, "keep"), encode_keep([1, 5, 6, 7], 10)  # ranges are shorter here
    ([1, 5, 6, 7], '1,5-7')
    >>> encode_keep(list(range(0, 64, 2)), 64)  # every other id: 90 characters as ranges
    'rice0:kept32:VVVVVVVVVVQ='
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from tmpbench.errors import DataFormatError, TmpbenchError, did_you_mean
from tmpbench.pruning.tree import POLICIES

PLAN_VERSION = 3  # the newest format; to_json writes the lowest version that holds a plan (module docstring)
READABLE_VERSIONS = (1, 2, 3)
RICE_MAX_K = 30
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


_CODED = re.compile(r"rice([0-9]+):(kept|drop)([0-9]+):([A-Za-z0-9+/]*={0,2})")


def _b64_chars(bits: int) -> int:
    """Characters of padded base64 holding ``bits`` bits (whole bytes, 4 characters per 3 bytes)."""
    return 4 * -(-((bits + 7) // 8) // 3)


def _rice_bits(gaps: np.ndarray, k: int) -> int:
    """Bits of the Rice code of ``gaps`` with parameter ``k`` (remainders, unary quotients, stop bits)."""
    return int((gaps >> k).sum()) + len(gaps) * (k + 1)


def _rice_pack(gaps: np.ndarray, k: int) -> bytes:
    """The bit string of the module docstring: K-bit remainders, then unary quotients, zero-padded."""
    n = len(gaps)
    rem = ((gaps[:, None] >> np.arange(k - 1, -1, -1)) & 1).astype(np.uint8).ravel() if k else np.zeros(0, np.uint8)
    quotients = gaps >> k
    unary = np.ones(int(quotients.sum()) + n, dtype=np.uint8)
    unary[np.cumsum(quotients + 1) - 1] = 0  # each quotient's stop bit
    return np.packbits(np.concatenate([rem, unary])).tobytes()


def _coded(ids: list[int], count: int) -> str | None:
    """The shortest Rice-coded form of ``ids`` (sorted, unique, within ``range(count)``), or None when
    they do not fit ``count``. Ties: ``kept`` before ``drop``, smaller K first."""
    kept = np.asarray(ids, dtype=np.int64)
    if kept.size and (kept[0] < 0 or kept[-1] >= count):
        return None
    mask = np.ones(count, dtype=bool)
    mask[kept] = False
    best: tuple[int, str, np.ndarray, int] | None = None
    for name, coded in (("kept", kept), ("drop", np.flatnonzero(mask))):
        gaps = np.diff(coded, prepend=-1) - 1
        for k in range(RICE_MAX_K + 1):
            head = len(f"rice{k}:{name}{len(coded)}:")
            size = head + _b64_chars(_rice_bits(gaps, k))
            if best is None or size < best[0]:
                best = (size, name, gaps, k)
            if head + _b64_chars(len(gaps) * (k + 1)) >= best[0]:
                break  # the remainders and stop bits alone are longer from here on
    assert best is not None
    _, name, gaps, k = best
    return f"rice{k}:{name}{len(gaps)}:" + base64.b64encode(_rice_pack(gaps, k)).decode("ascii")


def encode_keep(ids: list[int], count: int | None, what: str = "keep") -> str:
    """The canonical on-disk form of a decision's kept ids: the range string, or the Rice-coded id set
    when that is strictly shorter and ``count`` (the decision's ``original_count``) is known (module
    docstring). Raises TmpbenchError (naming ``what``) for ids the range string cannot hold."""
    ranges = encode_ids(ids, what)
    if count is None:
        return ranges
    coded_ids = min(len(ids), max(count - len(ids), 0))  # a coded form spends at least one bit per coded id
    if len(ranges) <= len("rice0:kept0:") + _b64_chars(coded_ids):  # the shortest a coded form can be
        return ranges
    coded = _coded(ids, count)
    return coded if coded is not None and len(coded) < len(ranges) else ranges


def decode_keep(text: str, count: int | None, what: str, version: int = PLAN_VERSION) -> list[int]:
    """The kept ids of an on-disk ``keep`` string of plan format ``version`` (2: range strings only; 3:
    ranges or a Rice-coded id set), checked against ``count`` (the decision's ``original_count``).
    One-line DataFormatError naming ``what`` (the decision) otherwise."""
    if not text.startswith("rice"):
        return decode_ids(text, count, what)
    if version < 3:
        raise DataFormatError(
            f"{what}: keep {_clip(text)!r} is a Rice-coded id set, which plan version 3 introduced; this file says "
            f'"version": {version} (write "version": 3, or the ids as a range string)'
        )
    m = _CODED.fullmatch(text)
    if m is None:
        raise DataFormatError(
            f"{what}: keep {_clip(text)!r} is neither a range string nor a coded id set 'rice<K>:<kept|drop><N>:<base64>'"
        )
    k, which, n = int(m[1]), m[2], int(m[3])
    if count is None:
        raise DataFormatError(f"{what}: keep {_clip(text)!r} is coded, which needs the decision's original_count; it has none")
    if k > RICE_MAX_K:
        raise DataFormatError(f"{what}: keep {_clip(text)!r} has Rice parameter K={k}; K is at most {RICE_MAX_K}")
    if n > count:
        raise DataFormatError(f"{what}: keep {_clip(text)!r} codes {n} ids of {count} units; at most {count}")
    try:
        raw = base64.b64decode(m[4], validate=True)
    except binascii.Error:
        raw = None
    if raw is None or base64.b64encode(raw).decode("ascii") != m[4]:
        raise DataFormatError(f"{what}: keep {_clip(text)!r} is not canonical padded base64 (RFC 4648)")
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    unary = bits[n * k:]
    stops = np.flatnonzero(unary == 0)[:n]
    if len(bits) < n * k or len(stops) < n:
        raise DataFormatError(f"{what}: keep {_clip(text)!r} holds fewer than the {n} coded ids it announces")
    end = int(stops[-1]) + 1 if n else 0
    if len(unary) - end >= 8 or unary[end:].any():
        raise DataFormatError(f"{what}: keep {_clip(text)!r} has bits past its {n} coded ids (only zero padding to the byte may follow)")
    weights = np.left_shift(1, np.arange(k - 1, -1, -1, dtype=np.int64))
    rem = bits[: n * k].astype(np.int64).reshape(n, k) @ weights if k else np.zeros(n, dtype=np.int64)
    gaps = ((np.diff(stops, prepend=-1) - 1) << k) | rem
    coded = np.cumsum(gaps + 1) - 1
    if n and coded[-1] >= count:
        raise DataFormatError(
            f"{what}: keep {_clip(text)!r} codes id {int(coded[-1])}, out of bounds for {count} units (ids 0..{count - 1})"
        )
    if which == "kept":
        return coded.tolist()
    mask = np.ones(count, dtype=bool)
    mask[coded] = False
    return np.flatnonzero(mask).tolist()


def _clip(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


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


# "keep" by plan version: v1 lists the ids, v2 writes ranges, v3 ranges or coded id sets (module docstring)
_KEEP_TYPES: dict[int, tuple[Any, str]] = {
    1: (lambda v: v is None or _int_list(v), "a list of integers or null (version 1)"),
    2: (lambda v: v is None or isinstance(v, str),
        "a range string like '0-127,130-255' or null (version 2; a version 1 plan lists the ids and says \"version\": 1)"),
    3: (lambda v: v is None or isinstance(v, str),
        "a range string like '0-127,130-255', a coded id set 'rice<K>:<kept|drop><N>:<base64>', or null "
        "(version 3; a version 1 plan lists the ids and says \"version\": 1)"),
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

    ``to_json``/``save`` write kept ids as inclusive range strings such as ``"0-127,130-255"`` (format
    version 2) or, where shorter, as Rice-coded id sets (version 3; see the module docstring);
    ``from_dict``/``load`` read versions 1, 2 and 3.
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
    def to_dict(self, version: int | None = None) -> dict[str, Any]:
        """JSON-ready data in format ``version``: None (the default, canonical) writes the lowest version
        that holds the plan (2 when every keep is shortest as ranges, else 3); 3 allows coded id sets and
        says so even when none is used; 2 writes every keep as ranges; 1 as lists (module docstring)."""
        if version is not None and version not in READABLE_VERSIONS:
            raise TmpbenchError(f"plan version {version} cannot be written; choose one of {list(READABLE_VERSIONS)}")
        data = asdict(self)
        coded = False
        if version != 1:
            for out, d in zip(data["decisions"], self.decisions):
                if d.keep is not None:
                    what = f"decision {d.policy} at {d.path!r}"
                    out["keep"] = encode_ids(d.keep, what) if version == 2 else encode_keep(d.keep, d.original_count, what)
                    coded |= out["keep"].startswith("rice")
        data["version"] = version if version is not None else (3 if coded else 2)
        return data

    def to_json(self, indent: int | None = 2, version: int | None = None) -> str:
        """Canonical JSON: keys sorted, decisions in natural path order, each keep in its shortest form,
        the lowest version that holds it (what ``save`` writes and ``plan_sha256`` hashes)."""
        return json.dumps(self.to_dict(version), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """A Plan from version 1, 2 or 3 data (no ``version`` key: the newest, 3), strictly checked."""
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
                d = {**d, "keep": decode_keep(d["keep"], d.get("original_count"), where, version)}
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
