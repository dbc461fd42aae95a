"""Suites: a small YAML per benchmark plus one loader, producing a hashed list of prompts or edits.

A suite YAML (under the top-level ``suites/`` package, in the style of lm-evaluation-harness task
YAMLs) names the suite, its version, its kind (``t2i`` or ``edit``), the loader that reads it
(``"module:attr"``), a default ``source`` (a documented file path or a Hugging Face dataset id), the
metrics it is scored with, a base seed, and loader options (``prompt_field``, ``n_per_category``,
...). A variant ``include:``s another YAML and overrides keys (``oneig-zh`` includes ``oneig``).

The loader turns the source into :class:`SuiteItem` s; :func:`load_suite` applies ``limit`` and
returns a :class:`Suite` whose :attr:`Suite.hash` identifies exactly the prompts evaluated.

Every suite has three disjoint, deterministic splits (:func:`split_of`): ``calib`` (calibration and
recovery training, any search over pruning settings), ``dev`` (recovery's held-out loss) and
``test`` (what ``run``/``sweep``/``compare``/``gate``/``ablate`` evaluate by default). An item's
split is fixed by ``sha256("<suite name>/<item id>") mod 100``: below 10 ``calib``, below 20 ``dev``,
else ``test`` (a YAML may set other percentages with ``splits: {calib: P, dev: P}``). ``load_suite(...,
split="test")`` keeps one split before ``limit``; ``split="all"`` keeps every item (legacy runs).
The rule and the split chosen are part of the suite hash.

Example::

    >>> from tmpbench.suites.core import load_suite
    >>> suite = load_suite("shapes-t2i", limit=12)
    >>> suite.kind, len(suite.items), suite.categories["counting"]
    ('t2i', 12, 2)
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tmpbench.catalog import SUITES
from tmpbench.errors import DataFormatError, OfflineError, TmpbenchError

KINDS = ("t2i", "edit")
#: on-disk image layouts (tmpbench.suites.layout): GenEval's folder per prompt, OneIG's 2x2 grid per prompt
LAYOUTS = ("geneval", "oneig")
#: procedural worlds whose items carry an exact ground truth (tmpbench.shapes renders it)
WORLDS = ("shapes",)

#: Keys every suite YAML must define (after includes are merged).
REQUIRED_KEYS = ("name", "version", "kind", "loader")
#: Keys with a meaning to the core; every other key is a loader option (``spec.options``).
CORE_KEYS = (
    "name", "version", "kind", "loader", "source", "description", "metrics", "seed", "include", "splits",
    *("benchmark", "language", "layout", "world"),  # traits: read these, never the suite's name
)

#: The evaluation splits every suite has, and the name that keeps all of them (legacy runs).
SPLITS = ("calib", "dev", "test")
ALL = "all"
#: Default percentages of the split rule (``test`` takes the rest): shapes-t2i splits 58/64/478 of its 600
#: items, shapes-edit 29/26/245 of 300 (tests/suites/test_splits.py pins these).
DEFAULT_SPLIT_PERCENT = (("calib", 10), ("dev", 10))

_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# ---------------------------------------------------------------------------------------------
# items and suites
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SuiteItem:
    """One prompt (T2I) or edit (instruction in ``prompt``) of a suite.

    ``index`` is the 0-based position in the (possibly limited) suite and names the item's folder
    in the GenEval layout; ``id`` is the benchmark's own id (a string, e.g. OneIG's ``"000"``);
    ``metadata`` is JSON-serialisable and is what gets written beside the images; ``seed`` is the
    item's own generation seed, fixed by the suite (stable under ``limit``).

    ``source_image`` (edit suites only, not hashed: it is a location, not content) is a ``Path`` to
    the input image or a zero-argument callable returning a PIL image; use :meth:`load_source_image`.
    """

    index: int
    id: str
    category: str
    prompt: str
    metadata: dict
    seed: int
    source_image: Path | Callable[[], Any] | None = field(default=None, compare=False, repr=False)

    def load_source_image(self):
        """The edit's input image as an RGB PIL image, or None for items without one.

        ShapesWorld edits carry no file: render ``metadata["source"]`` with tmpbench.shapes.world.
        """
        if self.source_image is None:
            return None
        if callable(self.source_image):
            return self.source_image().convert("RGB")
        from PIL import Image

        path = Path(self.source_image)
        if not path.is_file():
            raise TmpbenchError(
                f"source image {path} of item {self.id!r} not found; set the suite's image_root to the folder holding it"
            )
        with Image.open(path) as im:
            return im.convert("RGB")


@dataclass
class Suite:
    """A loaded suite: its identity, its items and a content hash.

    ``hash`` is the sha256 (hex) of a canonical JSON of the name, version and every item's id,
    prompt, metadata and seed, so it is identical across runs, processes and machines and changes
    whenever any prompt, metadata, seed or the version changes.
    """

    name: str
    kind: str
    version: str
    items: list[SuiteItem]
    metrics: list[str] = field(default_factory=list)
    source: str | None = None
    description: str = ""
    # traits (from the YAML; see SuiteSpec): code asks these, never the suite's name
    benchmark: str = ""  # the benchmark whose protocol and judges apply ("oneig", "geneval", "shapes", ...)
    language: str = "en"  # language of the prompts ("en", "zh", "cn"; "all" for mixed suites)
    layout: str = "geneval"  # on-disk image layout of generated samples (LAYOUTS)
    world: str | None = None  # procedural world with exact ground truth ("shapes"), None for real benchmarks
    split: str = ALL  # the evaluation split kept (SPLITS), or "all"
    split_rule: dict = field(default_factory=lambda: split_rule(DEFAULT_SPLIT_PERCENT))  # how items fall into splits

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[SuiteItem]:
        return iter(self.items)

    def __getitem__(self, index: int) -> SuiteItem:
        return self.items[index]

    @property
    def categories(self) -> dict[str, int]:
        """Item count per category, in order of first appearance."""
        return dict(Counter(item.category for item in self.items))

    @cached_property
    def hash(self) -> str:
        return suite_hash(self.name, self.version, self.items, split={"name": self.split, "rule": self.split_rule})

    def summary(self) -> dict:
        """What ``tmpbench suites show --json`` prints."""
        return {
            "name": self.name,
            "kind": self.kind,
            "version": self.version,
            "count": len(self.items),
            "split": self.split,
            "split_rule": self.split_rule,
            "by_category": self.categories,
            "hash": self.hash,
            "metrics": list(self.metrics),
            "source": self.source,
            "traits": self.traits,
        }

    @property
    def traits(self) -> dict:
        """The suite's traits: benchmark, language, on-disk layout and procedural world."""
        return {"benchmark": self.benchmark, "language": self.language, "layout": self.layout, "world": self.world}


def edit_source(suite: Suite, item: SuiteItem, size: int):
    """The input image of an edit item as an RGB PIL image: ShapesWorld renders it from the item's
    metadata at ``size`` px; real suites read it (``image_root``). Generation and calibration both use this."""
    if suite.world == "shapes" and item.source_image is None:
        from PIL import Image

        from tmpbench.shapes.render import render_source

        return Image.fromarray(render_source(item.metadata, size))
    image = item.load_source_image()
    if image is None:
        raise TmpbenchError(f"edit item {item.id!r} of suite {suite.name!r} has no source image")
    return image


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys, no whitespace and raw unicode: one text per value."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def suite_hash(name: str, version: str, items: list[SuiteItem], split: dict | None = None) -> str:
    """sha256 hex over the canonical JSON of (name, version, items' id/prompt/metadata/seed) and, when
    given, the split (its name and rule), so a change of the split rule changes the hash."""
    payload = {
        "name": name,
        "version": str(version),
        "items": [{"id": it.id, "prompt": it.prompt, "metadata": it.metadata, "seed": it.seed} for it in items],
    }
    if split is not None:
        payload["split"] = split
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def split_rule(percent: tuple[tuple[str, int], ...]) -> dict:
    """The split rule as data (recorded in the suite hash and ``suites show``): the bucket function and
    each split's ``[low, high)`` bucket range."""
    bounds, low = {}, 0
    for name, pct in percent:
        bounds[name] = [low, low + int(pct)]
        low += int(pct)
    bounds["test"] = [low, 100]
    return {"bucket": "sha256('<suite name>/<item id>') mod 100", "ranges": bounds}


def split_bucket(suite_name: str, item_id: str) -> int:
    """The item's bucket in 0..99: sha256 of ``"<suite name>/<item id>"`` modulo 100."""
    digest = hashlib.sha256(f"{suite_name}/{item_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 100


def split_of(suite_name: str, item_id: str, rule: dict | None = None) -> str:
    """The split (``calib``, ``dev`` or ``test``) item ``item_id`` of suite ``suite_name`` belongs to.

    >>> split_of("shapes-t2i", "00000") in SPLITS
    True
    """
    ranges = (rule or split_rule(DEFAULT_SPLIT_PERCENT))["ranges"]
    bucket = split_bucket(suite_name, item_id)
    for name in SPLITS:
        low, high = ranges[name]
        if low <= bucket < high:
            return name
    raise TmpbenchError(f"split rule {ranges} leaves bucket {bucket} in no split")  # pragma: no cover - rules cover 0..99


def check_split(split: str, suite_name: str = "") -> str:
    """``split`` if it is one of :data:`SPLITS` or ``all``; else a one-line error naming them."""
    if split not in (*SPLITS, ALL):
        where = f"suite {suite_name!r} has" if suite_name else "suites have"
        raise TmpbenchError(f"--split {split!r}: {where} splits {', '.join(SPLITS)} (or {ALL})")
    return split


def item_seed(base_seed: int, position: int) -> int:
    """The generation seed of the item at ``position`` of the full suite (a 31-bit int)."""
    state = np.random.SeedSequence([int(base_seed), int(position)]).generate_state(1, dtype=np.uint32)[0]
    return int(state) & 0x7FFFFFFF


# ---------------------------------------------------------------------------------------------
# YAML specs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SuiteSpec:
    """A parsed suite YAML (includes merged). ``options`` holds the loader-specific keys."""

    name: str
    version: str
    kind: str
    loader: str
    source: str | None = None
    description: str = ""
    metrics: tuple[str, ...] = ()
    seed: int = 0
    options: dict = field(default_factory=dict)
    path: Path | None = None
    benchmark: str = ""  # default: the suite's name
    language: str = "en"
    layout: str = "geneval"
    world: str | None = None
    splits: tuple[tuple[str, int], ...] = DEFAULT_SPLIT_PERCENT  # percent of buckets for calib and dev

    @property
    def split_rule(self) -> dict:
        return split_rule(self.splits)

    @classmethod
    def from_yaml(cls, path: str | Path) -> SuiteSpec:
        """Read a suite YAML, resolving ``include:`` (relative to the including file)."""
        path = Path(path)
        data = _read_yaml_with_includes(path, seen=())
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise DataFormatError(f"{path}: suite YAML lacks {', '.join(missing)}; add them (see suites/geneval.yaml)")
        if data["kind"] not in KINDS:
            raise DataFormatError(f"{path}: kind {data['kind']!r} is not one of {', '.join(KINDS)}")
        if ":" not in str(data["loader"]):
            raise DataFormatError(f"{path}: loader {data['loader']!r} must look like 'module:attr'")
        metrics = data.get("metrics") or []
        if not isinstance(metrics, list):
            raise DataFormatError(f"{path}: metrics must be a list, got {metrics!r}")
        layout = str(data.get("layout", "geneval"))
        if layout not in LAYOUTS:
            raise DataFormatError(f"{path}: layout {layout!r} is not one of {', '.join(LAYOUTS)}")
        world = None if data.get("world") is None else str(data["world"])
        if world is not None and world not in WORLDS:
            raise DataFormatError(f"{path}: world {world!r} is not one of {', '.join(WORLDS)} (or null)")
        splits = _parse_splits(path, data.get("splits"))
        return cls(
            name=str(data["name"]),
            version=str(data["version"]),
            kind=str(data["kind"]),
            loader=str(data["loader"]),
            source=None if data.get("source") is None else str(data["source"]),
            description=str(data.get("description", "")).strip(),
            metrics=tuple(str(m) for m in metrics),
            seed=int(data.get("seed", 0)),
            options={k: v for k, v in data.items() if k not in CORE_KEYS},
            path=path,
            benchmark=str(data.get("benchmark") or data["name"]),
            language=str(data.get("language", "en")),
            layout=layout,
            world=world,
            splits=splits,
        )

    def option(self, key: str, default: Any = ...) -> Any:
        """A loader option; without a default, a missing key raises a one-line error."""
        if key in self.options:
            return self.options[key]
        if default is ...:
            where = f" ({self.path})" if self.path else ""
            raise DataFormatError(f"suite {self.name!r}{where} needs the option {key!r}; add it to its YAML")
        return default

    def with_overrides(self, overrides: dict | None) -> SuiteSpec:
        """A copy with loader options (or ``source``/``seed``) replaced, e.g. ``{"image_root": "/data"}``."""
        if not overrides:
            return self
        core = {k: v for k, v in overrides.items() if k in ("source", "seed", "metrics", "description")}
        if "seed" in core:
            core["seed"] = int(core["seed"])
        if "metrics" in core:
            core["metrics"] = tuple(core["metrics"])
        bad = [k for k in overrides if k in ("name", "version", "kind", "loader", "include")]
        if bad:
            raise TmpbenchError(f"cannot override {', '.join(bad)} of suite {self.name!r}; write a new YAML that includes it")
        options = {**self.options, **{k: v for k, v in overrides.items() if k not in core}}
        return replace(self, options=options, **core)

    def item(self, position: int, *, id: str, category: str, prompt: str, metadata: dict, source_image=None) -> SuiteItem:
        """Build the item at ``position`` of the full suite, with its seed derived from the suite seed."""
        return SuiteItem(
            index=position,
            id=str(id),
            category=str(category),
            prompt=str(prompt),
            metadata=metadata,
            seed=item_seed(self.seed, position),
            source_image=source_image,
        )


def _parse_splits(path: Path, value: Any) -> tuple[tuple[str, int], ...]:
    """A YAML's ``splits: {calib: P, dev: P}`` (percent of buckets; test takes the rest), or the default."""
    if value is None:
        return DEFAULT_SPLIT_PERCENT
    if not isinstance(value, dict) or set(value) != {"calib", "dev"}:
        raise DataFormatError(f"{path}: splits must map calib and dev to percentages, e.g. {{calib: 10, dev: 10}}")
    pcts = {k: value[k] for k in ("calib", "dev")}
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in pcts.values()) or sum(pcts.values()) >= 100:
        raise DataFormatError(f"{path}: splits {pcts} must be whole percentages >= 1 that leave some for test")
    return tuple(pcts.items())


def _read_yaml_with_includes(path: Path, seen: tuple[Path, ...]) -> dict:
    if not path.is_file():
        raise TmpbenchError(f"suite file {path} not found")
    resolved = path.resolve()
    if resolved in seen:
        raise DataFormatError(f"{path}: include cycle ({' -> '.join(p.name for p in (*seen, resolved))})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise DataFormatError(f"{path}{line}: malformed YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: a suite YAML must be a mapping of keys, got {type(data).__name__}")
    include = data.pop("include", None)
    if include is None:
        return data
    parent = _read_yaml_with_includes(path.parent / str(include), (*seen, resolved))
    return {**parent, **data}  # the including file's keys win (lm-evaluation-harness style)


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------


def get_spec(name: str) -> SuiteSpec:
    """The spec registered as ``name`` (or read from ``name`` when it is a path to a YAML file)."""
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        return SuiteSpec.from_yaml(name)
    entry = SUITES.get(name)  # raises UnknownNameError with "did you mean"
    if isinstance(entry, SuiteSpec):
        return entry
    if isinstance(entry, (str, Path)):
        return SuiteSpec.from_yaml(entry)
    if callable(entry):
        spec = entry()
        if isinstance(spec, SuiteSpec):
            return spec
    raise TmpbenchError(
        f"suite {name!r} is registered as {entry!r}; register a SuiteSpec, a YAML path or a function returning a SuiteSpec"
    )


def _import_loader(spec: SuiteSpec) -> Callable[[SuiteSpec, str | None], list[SuiteItem]]:
    module_name, _, attr = spec.loader.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise TmpbenchError(f"loader {spec.loader!r} of suite {spec.name!r} cannot be imported ({exc})") from None
    return obj


def limit_items(items: list[SuiteItem], limit: int) -> list[SuiteItem]:
    """The first ``limit`` items taken round-robin over categories, kept in suite order, re-indexed.

    A limited run therefore still covers every category (``--limit 12`` on shapes-t2i gives two
    prompts per GenEval tag). Seeds are unchanged; ``index`` becomes the position in the result.
    """
    if limit < 1:
        raise TmpbenchError(f"limit must be a positive number of items, got {limit}")
    if limit >= len(items):
        return list(items)
    by_cat: dict[str, list[int]] = {}
    for pos, it in enumerate(items):
        by_cat.setdefault(it.category, []).append(pos)
    chosen: list[int] = []
    depth = 0
    while len(chosen) < limit:
        for positions in by_cat.values():
            if depth < len(positions) and len(chosen) < limit:
                chosen.append(positions[depth])
        depth += 1
    return [replace(items[pos], index=i) for i, pos in enumerate(sorted(chosen))]


def load_suite(
    name: str,
    source: str | Path | None = None,
    limit: int | None = None,
    *,
    overrides: dict | None = None,
    split: str = ALL,
) -> Suite:
    """Load suite ``name`` from ``source`` (default: the YAML's ``source``), keeping the items of
    ``split`` (``calib``, ``dev``, ``test``, or ``all``), then ``limit`` of them.

    ``source`` is a file, a folder holding the benchmark's file, or a Hugging Face dataset id,
    depending on the suite. ``overrides`` replaces loader options of the YAML (e.g. ``image_root``).
    Items keep their seeds (from their position in the full suite); ``index`` is re-numbered.
    Raises UnknownNameError ("did you mean") for an unknown name, TmpbenchError for a missing file,
    DataFormatError naming file and line for bad data, OfflineError when a hub dataset is needed.
    """
    spec = get_spec(name).with_overrides(overrides)
    check_split(split, spec.name)
    loader = _import_loader(spec)
    src = None if source is None else str(source)
    items = loader(spec, src)
    if not items:
        raise DataFormatError(f"suite {spec.name!r} from {src or spec.source} holds no items")
    positions = [it.index for it in items]
    if positions != list(range(len(items))):
        raise TmpbenchError(f"loader {spec.loader!r} returned items out of order; indices must be 0..n-1")
    rule = spec.split_rule
    if split != ALL:
        items = [replace(it, index=i) for i, it in enumerate(it for it in items if split_of(spec.name, it.id, rule) == split)]
        if not items:
            raise DataFormatError(f"suite {spec.name!r} has no items in split {split!r}")
    if limit is not None:
        items = limit_items(items, int(limit))
    return Suite(
        name=spec.name,
        kind=spec.kind,
        version=spec.version,
        items=items,
        metrics=list(spec.metrics),
        source=src if src is not None else spec.source,
        description=spec.description,
        benchmark=spec.benchmark,
        language=spec.language,
        layout=spec.layout,
        world=spec.world,
        split=split,
        split_rule=rule,
    )


# ---------------------------------------------------------------------------------------------
# helpers shared by the loaders of real benchmarks
# ---------------------------------------------------------------------------------------------


def looks_like_hub_id(source: str) -> bool:
    """True for ``owner/name`` strings that are not an existing local path."""
    return bool(_HF_ID.match(source)) and not Path(source).exists() and not Path(source).suffix


def resolve_local_file(spec: SuiteSpec, source: str | None, filename: str) -> Path:
    """The benchmark file: ``source`` itself, or ``source/filename`` when ``source`` is a folder.

    Raises a one-line TmpbenchError naming the path and the ``--source`` flag when it is absent.
    """
    path = Path(source if source is not None else (spec.source or filename))
    if path.is_dir():
        path = path / filename
    if not path.is_file():
        raise TmpbenchError(
            f"{spec.name}: {path} not found; pass --source PATH to {filename} (or to the folder holding it)"
        )
    return path


def read_text_file(path: Path) -> str:
    """The text of a benchmark file: UTF-8 with or without a BOM, any line endings (CRLF kept for
    the parser, which accepts it). Another encoding is one line naming the file and its likely
    encoding, not a ``UnicodeDecodeError``.
    """
    data = path.read_bytes()
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4096]:
        raise DataFormatError(f"{path}: looks like UTF-16 (a UTF-16 BOM or NUL bytes); re-save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            f"{path}: not UTF-8 (byte {data[exc.start]:#04x} at offset {exc.start}; latin-1 or cp1252?); "
            "re-save it as UTF-8"
        ) from None


def parse_json(text: str, where: str, *, one_line: bool = False) -> Any:
    """``json.loads`` that refuses duplicate keys and NaN/Infinity, each with one line naming ``where``.

    ``where`` is the file the text came from (``"basic_edit.json"``), or a line of it (``"x.jsonl:3"``)
    when ``one_line``; a syntax error adds the line number to a whole file.
    """

    def pairs(items: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for key, value in items:
            if key in out:
                raise DataFormatError(f"{where}: duplicate key {key!r}; each key may appear once per object")
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise DataFormatError(f"{where}: {name} is not valid JSON; write a number or null")

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as exc:
        at = where if one_line else f"{where}:{exc.lineno}"
        # json's own msg may end in "at" ("Invalid control character at"): do not say it twice
        raise DataFormatError(f"{at}: malformed JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})") from None
    except RecursionError:
        raise DataFormatError(f"{where}: JSON nested too deeply") from None


def load_hub_dataset(spec: SuiteSpec, repo_id: str, config: str | None, split: str, hint: str):
    """``datasets.load_dataset(repo_id, config, split=split)``, one clear line when it cannot be had.

    ``hint`` tells the user what to pass to ``--source`` instead (e.g. "OneIG-Bench.csv").
    """
    import os

    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a core dependency
        from tmpbench.errors import MissingDependencyError

        raise MissingDependencyError("the 'datasets' package is needed for hub suites: pip install datasets") from None
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on") or os.environ.get(
        "HF_DATASETS_OFFLINE", ""
    ).lower() in ("1", "true", "yes", "on")
    try:
        return datasets.load_dataset(repo_id, config, split=split)
    except Exception as exc:  # hub errors come in many types; all mean "not available here"
        why = "offline and not in the local cache" if offline else f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        raise OfflineError(
            f"{spec.name}: Hugging Face dataset {repo_id!r} is not available ({why}); pass --source PATH to {hint}"
        ) from None
