"""Save and load pruned models: config + safetensors + a per-layer architecture spec + the Plan.

diffusers and transformers configs hold one width per model (``n_heads``, ``intermediate_size``),
so a model whose blocks were pruned unevenly cannot be rebuilt from its config alone (see
Torch-Pruning #495 and transformers #40759). A pruned folder therefore keeps the BASE config and
says per block what survived; loading builds the base on the meta device, reshapes each block to
the spec with the same surgery functions that pruned it, materialises it and loads the weights
strictly (every key, every shape).

Folder layout (on top of what the generator's own ``save`` writes: text encoder, VAE, tokenizer,
scheduler, the diffusers/transformers config)::

    DIR/tmpbench_model.json           marker: {"model": BASE, "pruned": true, "loader": ...}
    DIR/pruned.json                   identity: base, budget check, calibration and recovery, plan summary
    DIR/plan.json                     the Plan (replayable on a fresh base model)
    DEN/tmpbench_arch.json            base config + class + per-block architecture spec
    DEN/tmpbench_denoiser.safetensors the pruned denoiser's weights in their own dtypes

``DEN`` is ``DIR/transformer`` for diffusers pipelines and ``DIR`` for single-model folders
(HunyuanImage-3.0). The per-block spec names the heads (or KV groups) kept, FFN widths, experts
kept with top-k and expert width, a merged router's bias, blocks replaced by a linear map and the
original indices of the surviving blocks (so dropped blocks are explicit).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tmpbench.errors import DataFormatError, TmpbenchError
from tmpbench.models.base import resolve_target
from tmpbench.models.spec import MARKER_FILE

FORMAT = "tmpbench-pruned"
FORMAT_VERSION = 1
PRUNED_FILE = "pruned.json"
PLAN_FILE = "plan.json"
ARCH_FILE = "tmpbench_arch.json"
WEIGHTS_FILE = "tmpbench_denoiser.safetensors"
LOADER = "tmpbench.pruning.io:load_pruned_hook"
# Modules that moved after pruned folders were written (old -> new). A folder keeps the class path
# of its denoiser in ARCH_FILE; one written before a move names the old module, and still loads.
MOVED_MODULES = {
    "tmpbench.models.tiny_moe": "tmpbench.models.reference.tiny_moe",
    "tmpbench.models.tiny_zimage": "tmpbench.models.reference.tiny_zimage",
}


# --------------------------------------------------------------------------------------------
# architecture spec
# --------------------------------------------------------------------------------------------
def _block_lists(model: nn.Module) -> list[tuple[str, nn.ModuleList]]:
    from tmpbench.pruning.families import layout

    return layout(model).block_lists(model)


def describe_block(block: nn.Module, lay: Any = None) -> dict[str, Any]:
    """What survives in one block: attention heads, FFN widths, experts, router bias; or a linear map.
    ``lay`` (the model's :class:`~tmpbench.pruning.layouts.Layout`) may describe its own blocks."""
    from tmpbench.models.moe import MoEBlockView
    from tmpbench.pruning.hunyuan_tree import attention_layout, gqa_geometry, is_swiglu_split, mlp_width
    from tmpbench.pruning.surgery import LinearBlock
    from tmpbench.pruning.tree import attention_geometry, ffn_hidden, is_attention, is_dense_ffn, is_moe

    if isinstance(block, LinearBlock):
        return {"type": "linear", "dim": block.dim, "bias": block.linear.bias is not None}
    own = lay.describe_block(block) if lay is not None else None
    if own is not None:
        return {"type": "block", "parts": own}
    parts: dict[str, Any] = {}
    moe_paths: list[str] = []
    for name, mod in block.named_modules():
        if not name or any(name.startswith(p + ".experts") for p in moe_paths):
            continue
        if is_attention(mod):
            parts[name] = {"kind": "attention", "heads": attention_geometry(mod)[0]}
        elif hasattr(mod, "o_proj") and hasattr(mod, "head_dim"):
            try:
                attention_layout(mod)
            except TmpbenchError:
                continue
            heads, kv, _ = gqa_geometry(mod)
            parts[name] = {"kind": "gqa_attention", "heads": heads, "kv_groups": kv}
        elif is_moe(mod):
            view = MoEBlockView(name, mod)
            parts[name] = {"kind": "moe", "experts": view.num_experts, "top_k": view.top_k,
                           "intermediate": view.intermediate_size, "router_bias": view.router_bias is not None}
            moe_paths.append(name)
        elif is_swiglu_split(mod):
            parts[name] = {"kind": "ffn", "channels": mlp_width(mod)}
        elif is_dense_ffn(mod):
            parts[name] = {"kind": "ffn", "channels": ffn_hidden(mod)}
    return {"type": "block", "parts": parts}


def architecture_spec(model: nn.Module, base_model: nn.Module, plan: Any) -> dict[str, Any]:
    """The per-layer spec of pruned ``model`` (``base_model`` is the unpruned one, ``plan`` what was done)."""
    from tmpbench.pruning.families import layout

    dropped = {d.path for d in plan.decisions if d.policy == "drop_block"}
    lay = layout(base_model)
    lists = {}
    base_lists = dict(lay.block_lists(base_model))
    for name, blocks in lay.block_lists(model):  # the base's layout: a pruned model may no longer look like its family
        original = len(base_lists[name])
        kept = [i for i in range(original) if f"{name}.{i}" not in dropped]
        if len(kept) != len(blocks):
            raise TmpbenchError(f"{name}: the plan keeps {len(kept)} blocks but the model has {len(blocks)}")
        lists[name] = {
            "original_count": original,
            "dropped": [i for i in range(original) if i not in kept],
            "blocks": [{"index": i, **describe_block(b, lay)} for i, b in zip(kept, blocks)],
        }
    return {"lists": lists}


def _config_dict(model: nn.Module) -> dict[str, Any]:
    config = model.config
    data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return {k: v for k, v in data.items() if not (str(k).startswith("_") and k != "_attn_implementation")}


def _class_path(model: nn.Module) -> str:
    cls = type(model)
    return f"{cls.__module__}:{cls.__qualname__}"


def current_class_path(class_path: str) -> str:
    """``class_path`` (``"module:Class"``) with a moved module replaced by its new home (:data:`MOVED_MODULES`).

    >>> current_class_path("tmpbench.models.tiny_moe:TinyMoETransformer")
    'tmpbench.models.reference.tiny_moe:TinyMoETransformer'
    """
    module, sep, attr = class_path.partition(":")
    return f"{MOVED_MODULES.get(module, module)}{sep}{attr}"


def build_base(arch: dict[str, Any], device: str = "meta") -> nn.Module:
    """The unpruned denoiser the spec was cut from, on ``device`` (meta by default)."""
    try:
        cls = resolve_target(current_class_path(arch["class"]))
    except (ImportError, AttributeError) as exc:
        raise DataFormatError(
            f"denoiser class {arch['class']!r} of a pruned folder cannot be imported ({exc}); if its module moved, "
            "add the old -> new module to tmpbench.pruning.io.MOVED_MODULES"
        ) from exc
    config = dict(arch["base_config"])
    with torch.device(device):
        if hasattr(cls, "config_class") and getattr(cls, "config_class", None) is not None and not hasattr(cls, "from_config"):
            config.pop("_attn_implementation", None)
            return cls(cls.config_class.from_dict(config))
        return cls.from_config(config)


def apply_architecture(model: nn.Module, spec: dict[str, Any]) -> nn.Module:
    """Reshape the base ``model`` (any device, meta included) in place to ``spec``; weights are not kept."""
    from tmpbench.models.moe import MoEBlockView
    from tmpbench.pruning.families import layout
    from tmpbench.pruning.hunyuan_tree import prune_kv_groups, prune_mlp_channels
    from tmpbench.pruning.surgery import LinearBlock, prune_heads

    lay = layout(model)
    lists = dict(_block_lists(model))
    for name, entry in spec["lists"].items():
        if name not in lists:
            raise DataFormatError(f"architecture spec names block list {name!r}, which {type(model).__name__} lacks")
        blocks = lists[name]
        if len(blocks) != entry["original_count"]:
            raise DataFormatError(f"{name}: base model has {len(blocks)} blocks, spec says {entry['original_count']}")
        survivors = []
        for b in entry["blocks"]:
            block = blocks[b["index"]]
            if b["type"] == "linear":
                ref = next(block.parameters())
                survivors.append(LinearBlock(b["dim"], bias=b["bias"], device=ref.device, dtype=ref.dtype))
                continue
            if lay.reshape_block(block, b["parts"]):
                survivors.append(block)
                continue
            for path, part in b["parts"].items():
                mod = block.get_submodule(path)
                kind = part["kind"]
                if kind == "attention":
                    prune_heads(mod, range(part["heads"]))
                elif kind == "gqa_attention":
                    prune_kv_groups(mod, range(part["kv_groups"]))
                elif kind == "ffn":
                    prune_mlp_channels(mod, range(part["channels"]))
                elif kind == "moe":
                    view = MoEBlockView(path, mod)
                    if part["top_k"] < view.top_k:
                        view.top_k = part["top_k"]
                    view.keep_experts(range(part["experts"]))
                    view.top_k = part["top_k"]
                    if part["intermediate"] != view.intermediate_size:
                        view.keep_intermediate(range(part["intermediate"]))
                    wg = view.router
                    if part["router_bias"] and wg.bias is None:
                        mod.gate.wg = nn.Linear(wg.in_features, wg.out_features, bias=True,
                                                device=wg.weight.device, dtype=wg.weight.dtype)
                else:
                    raise DataFormatError(f"architecture spec part {path!r} has unknown kind {kind!r}")
            survivors.append(block)
        while len(blocks):  # refill the same ModuleList object in survivor order
            del blocks[len(blocks) - 1]
        blocks.extend(survivors)
    from tmpbench.pruning.hunyuan_tree import sync_layer_count

    sync_layer_count(model)  # decoders: layer count and KV-cache slots follow the survivors
    return model


def _restore_non_persistent(model: nn.Module, device: str) -> None:
    """Rebuild modules whose non-persistent buffers (e.g. rotary inv_freq) were left empty by to_empty."""
    for name, mod in list(model.named_modules()):
        if getattr(mod, "_non_persistent_buffers_set", None):
            if not hasattr(mod, "config"):
                raise TmpbenchError(f"cannot rebuild non-persistent buffers of {name!r} ({type(mod).__name__})")
            with torch.device(device):
                fresh = type(mod)(config=mod.config)
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, attr, fresh)


# --------------------------------------------------------------------------------------------
# save
# --------------------------------------------------------------------------------------------
def _denoiser_dir(generator: Any, path: Path) -> Path:
    return path / "transformer" if getattr(generator, "pipe", None) is not None else path


def _state_dict_unique(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for key, value in model.state_dict().items():
        ident = (value.data_ptr(), value.shape, value.dtype) if value.numel() else (key,)
        if ident in seen:
            aliases[key] = seen[ident]
            continue
        seen[ident] = key
        tensors[key] = value.detach().contiguous().cpu()
    return tensors, aliases


def save_denoiser(pruned: nn.Module, plan: Any, den: Path, base_config: dict[str, Any], base_cls: type | None = None) -> Path:
    """Write the pruned denoiser's architecture spec and weights to folder ``den`` (what :func:`load_denoiser`
    reads back); ``base_config`` is the config of the unpruned model ``plan`` was replayed on."""
    from safetensors.torch import save_file

    base_cls = base_cls or type(pruned)
    den.mkdir(parents=True, exist_ok=True)
    base = build_base({"class": _class_path(pruned), "base_config": base_config})
    arch = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "class": f"{base_cls.__module__}:{base_cls.__qualname__}",
        "base_config": base_config,
        **architecture_spec(pruned, base, plan),
    }
    tensors, aliases = _state_dict_unique(pruned)
    arch["tied"] = aliases
    save_file(tensors, str(den / WEIGHTS_FILE), metadata={"format": FORMAT})
    (den / ARCH_FILE).write_text(json.dumps(arch, indent=2, sort_keys=True) + "\n")
    return den


def save_pruned(result: Any, path: str | Path, spec_text: str | None = None) -> Path:
    """Write a :class:`~tmpbench.pruning.runner.PruneResult` to folder ``path`` (see the module docstring)."""
    path = Path(path)
    generator = result.generator
    pruned = generator.denoiser
    base_cls = resolve_target(_class_path(pruned))  # the denoiser's class is also the base's
    generator.save(path)
    den = _denoiser_dir(generator, path)
    den.mkdir(parents=True, exist_ok=True)
    for stale in list(den.glob("*.safetensors")) + list(den.glob("*.safetensors.index.json")) + list(den.glob("*.bin")):
        stale.unlink()  # written by the generator's own save with the base config; unloadable as such
    save_denoiser(pruned, result.plan, den, result.base.get("config") or _config_dict(pruned), base_cls)
    result.plan.save(path / PLAN_FILE)
    identity = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "base": {k: v for k, v in result.base.items() if k != "config"},
        "spec": spec_text,
        "denoiser_dir": str(den.relative_to(path)) if den != path else ".",
        "original_params": result.original_params,
        "achieved_params": result.achieved_params,
        "budget_report": result.budget_report.to_dict(),
        "calibration": result.calibration_identity,
        "recovery": result.recovery_identity,
        "recovery_log": {k: v for k, v in result.recovery_log.items() if k != "losses"},
        "plan_summary": result.plan.summary().splitlines()[0],
        "pruner": result.plan.pruner,
        "budget": result.plan.budget.get("text"),
        "pruner_settings": getattr(result, "pruner_settings", {}) or {},
        "seed": getattr(result, "seed", 0),
        "seconds": getattr(result, "seconds", {}) or {},
        "pruning_cost": getattr(result, "pruning_cost", {}) or {},
    }
    (path / PRUNED_FILE).write_text(json.dumps(identity, indent=2, sort_keys=True, default=str) + "\n")
    marker = path / MARKER_FILE
    data = json.loads(marker.read_text()) if marker.is_file() else {}
    data.update(model=result.base.get("model") or data.get("model"), pruned=True, loader=LOADER)
    marker.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


# --------------------------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------------------------
REPRUNE = "re-run `tmpbench prune` to write the folder again"


def is_pruned_dir(path: str | Path) -> bool:
    """Whether ``path`` was written by :func:`save_pruned`, damaged or not (any of its own members is there),
    so that loading a damaged one names what is missing instead of trying another loader."""
    path = Path(path)
    if any(p.is_file() for p in (path / PRUNED_FILE, path / ARCH_FILE, path / "transformer" / ARCH_FILE)):
        return True
    try:
        return LOADER.encode() in (path / MARKER_FILE).read_bytes()
    except OSError:
        return False


def read_json_member(path: Path, folder: Path) -> dict[str, Any]:
    """A JSON object member of a pruned folder; a missing, undecodable or non-object file raises one line."""
    if not path.is_file():
        raise DataFormatError(f"pruned model folder {folder} lacks {path.name}; {REPRUNE}")
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path} is damaged (not valid JSON: {str(exc).splitlines()[0][:80]}); {REPRUNE}") from None
    if not isinstance(data, dict):
        raise DataFormatError(f"{path} is damaged (a JSON {type(data).__name__}, not an object); {REPRUNE}")
    return data


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[-1][:160] if lines else ''}"


def _expect(ok: bool, where: Path, what: str) -> None:
    if not ok:
        raise DataFormatError(f"{where} is damaged ({what}); {REPRUNE}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_PART_FIELDS = {
    "attention": {"heads": _is_int},
    "gqa_attention": {"heads": _is_int, "kv_groups": _is_int},
    "ffn": {"channels": _is_int},
    "moe": {"experts": _is_int, "top_k": _is_int, "intermediate": _is_int, "router_bias": lambda v: isinstance(v, bool)},
}


def check_arch(arch: dict[str, Any], arch_file: Path) -> None:
    """The types of an architecture spec (as :func:`save_pruned` writes it); one line on the first wrong one."""
    _expect(isinstance(arch.get("class"), str), arch_file, "'class' must be a 'module:Class' string")
    _expect(isinstance(arch.get("base_config"), dict), arch_file, "'base_config' must be an object")
    tied = arch.get("tied", {})
    _expect(isinstance(tied, dict) and all(isinstance(v, str) for v in tied.values()), arch_file, "'tied' must map names to names")
    lists = arch.get("lists")
    _expect(isinstance(lists, dict), arch_file, "'lists' must be an object")
    for name, entry in lists.items():
        at = f"lists.{name}"
        _expect(isinstance(entry, dict) and _is_int(entry.get("original_count")) and isinstance(entry.get("blocks"), list),
                arch_file, f"{at} needs an integer original_count and a list of blocks")
        previous = -1
        for k, b in enumerate(entry["blocks"]):
            bat = f"{at}.blocks[{k}]"
            _expect(isinstance(b, dict) and _is_int(b.get("index")) and previous < b["index"] < entry["original_count"],
                    arch_file, f"{bat} needs an index in 0..original_count-1, above the previous block's")
            previous = b["index"]
            if b.get("type") == "linear":
                _expect(_is_int(b.get("dim")) and b["dim"] > 0 and isinstance(b.get("bias"), bool), arch_file,
                        f"{bat} needs a positive integer dim and a boolean bias")
                continue
            _expect(b.get("type") == "block" and isinstance(b.get("parts"), dict), arch_file,
                    f"{bat} needs type block with parts, or type linear")
            for path, part in b["parts"].items():
                fields = _PART_FIELDS.get(part.get("kind")) if isinstance(part, dict) and isinstance(part.get("kind"), str) else None
                _expect(fields is not None, arch_file, f"{bat}.parts.{path} has no known kind")
                for key, ok in fields.items():
                    _expect(ok(part.get(key)) and (not _is_int(part.get(key)) or part[key] >= 0), arch_file,
                            f"{bat}.parts.{path}.{key} has the wrong type")


def load_denoiser(den: Path, device: str = "cpu") -> nn.Module:
    """Rebuild a pruned denoiser from ``den``'s architecture spec and load its weights strictly."""
    from safetensors.torch import load_file

    arch_file = den / ARCH_FILE
    if not arch_file.is_file():
        raise DataFormatError(f"{den} has no {ARCH_FILE}; it was not written by tmpbench.pruning.io.save_pruned ({REPRUNE})")
    arch = read_json_member(arch_file, den)
    if arch.get("format") != FORMAT or arch.get("version") != FORMAT_VERSION:
        raise DataFormatError(
            f"{arch_file}: format {arch.get('format')!r} v{arch.get('version')} is not {FORMAT} v{FORMAT_VERSION}; {REPRUNE}"
        )
    check_arch(arch, arch_file)
    try:  # the base config is handed to the model class, whose constructor says no in its own words
        base = build_base(arch, "meta")
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, ZeroDivisionError, AssertionError, RuntimeError) as exc:
        # RuntimeError: torch refuses a negative or impossible size (e.g. siglip_feat_dim=-1)
        if isinstance(exc, TmpbenchError):  # e.g. a class that cannot be imported: add which file said so
            raise DataFormatError(f"{arch_file}: {exc}; if the file is damaged, {REPRUNE}") from exc
        raise DataFormatError(
            f"{arch_file}: base_config does not build {arch['class']} ({_one_line(exc)}); {REPRUNE}"
        ) from exc
    try:  # block indices, part paths and widths that the base model does not have
        model = apply_architecture(base, arch)
    except (IndexError, AttributeError, KeyError, TmpbenchError) as exc:
        what = str(exc) if isinstance(exc, TmpbenchError) else _one_line(exc)
        raise DataFormatError(f"{arch_file}: the architecture spec does not fit {arch['class']} ({what}); {REPRUNE}") from exc
    model = model.to_empty(device=device)
    _restore_non_persistent(model, device)
    weights = den / WEIGHTS_FILE
    if not weights.is_file():
        raise DataFormatError(f"pruned model folder {den} lacks {WEIGHTS_FILE}; {REPRUNE}")
    from safetensors import SafetensorError

    try:
        state = load_file(str(weights), device=device)
    except SafetensorError as exc:
        raise DataFormatError(f"{weights} is damaged ({_one_line(exc)}); {REPRUNE}") from None
    for alias, source in arch.get("tied", {}).items():
        if source not in state:
            raise DataFormatError(f"{arch_file}: tied weight {alias!r} names {source!r}, which {weights.name} lacks; {REPRUNE}")
        state[alias] = state[source]
    try:
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as exc:  # shape mismatches (raised whatever `strict` says)
        raise DataFormatError(f"{weights}: weights do not fit {arch_file.name} ({_one_line(exc)}); {REPRUNE}") from None
    if missing or unexpected:
        raise DataFormatError(
            f"{den}: weights do not match the rebuilt architecture (missing {missing[:4]}, unexpected {unexpected[:4]}); {REPRUNE}"
        )
    for alias, source in arch.get("tied", {}).items():  # re-share what was shared when saved
        parent, _, attr = alias.rpartition(".")
        sparent, _, sattr = source.rpartition(".")
        setattr(model.get_submodule(parent), attr, getattr(model.get_submodule(sparent), sattr))
    return model.eval()


def load_pruned(path: str | Path, device: str = "cpu") -> Any:
    """Load a folder written by :func:`save_pruned` as a Generator of its base family."""
    from tmpbench.catalog import MODELS

    path = Path(path).expanduser()
    if not is_pruned_dir(path):
        raise TmpbenchError(f"{str(path)!r} is not a pruned model folder (no {PRUNED_FILE}); write one with `tmpbench prune`")
    meta = read_json_member(path / PRUNED_FILE, path)
    _expect(isinstance(meta.get("denoiser_dir", "."), str) and isinstance(meta.get("base", {}), dict), path / PRUNED_FILE,
            "'denoiser_dir' must be a string and 'base' an object")
    read_plan(path)  # the plan travels with the weights (replayable); a folder without a readable one is incomplete
    den_dir = path / meta.get("denoiser_dir", ".")
    denoiser = load_denoiser(den_dir, device=device)
    marker = read_json_member(path / MARKER_FILE, path) if (path / MARKER_FILE).is_file() else {}
    base = meta.get("base", {}).get("model") or marker.get("model")
    _expect(base is None or isinstance(base, str), path / PRUNED_FILE, "'base.model' must be a model name")
    _expect(isinstance(marker.get("name", base), (str, type(None))), path / MARKER_FILE, "'name' must be a string")
    family = MODELS.get(base).family if base in MODELS else ("hunyuanimage3" if den_dir == path else "zimage")
    if family == "hunyuanimage3":
        from tmpbench.models.hunyuan import HunyuanImage3Generator

        return HunyuanImage3Generator(denoiser, name=marker.get("name", base), source_dir=str(path))
    return _load_zimage(path, denoiser, base, marker.get("name", base), device)


def _load_zimage(path: Path, transformer: nn.Module, base: str, name: str, device: str) -> Any:
    from tmpbench.models.zimage import ZImageGenerator

    if (path / "tmpbench.json").is_file():  # a tiny reference pipeline (tmpbench.models.reference.tiny_zimage layout)
        from diffusers import FlowMatchEulerDiscreteScheduler
        from transformers import PreTrainedTokenizerFast, Qwen3Model

        from tmpbench.models.reference import tiny_zimage as tz

        cfg = tz.TinyZImageConfig(**json.loads((path / "tmpbench.json").read_text())["tiny_config"])
        dtype = next(transformer.parameters()).dtype
        components = dict(
            transformer=transformer,
            text_encoder=Qwen3Model.from_pretrained(path / "text_encoder", torch_dtype=dtype),
            tokenizer=PreTrainedTokenizerFast.from_pretrained(path / "tokenizer"),
            vae=tz.PixelShuffleAutoencoder.from_config(tz.PixelShuffleAutoencoder.load_config(path / "vae")),
            scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(path / "scheduler"),
        )
        pipe = tz.make_pipeline(components).to(device)
        return ZImageGenerator(pipe, name=name, model=base, edit_fn=tz.edit_in_sequence,
                               max_sequence_length=cfg.max_sequence_length,
                               save_fn=lambda p, d: tz.save_pipeline(p, d, cfg))
    from diffusers import ZImagePipeline

    from tmpbench.models.weights import quiet_hub_logs

    with quiet_hub_logs():
        pipe = ZImagePipeline.from_pretrained(str(path), transformer=transformer, local_files_only=True,
                                              dtype=next(transformer.parameters()).dtype)
    return ZImageGenerator(pipe.to(device), name=name, model=base)


def read_plan(path: Path) -> Any:
    """The folder's ``plan.json`` as a Plan; damage is one line naming the file and the fix."""
    from tmpbench.pruning.plan import Plan

    try:
        return Plan.load(path / PLAN_FILE)
    except TmpbenchError as exc:
        where = "" if str(path / PLAN_FILE) in str(exc) else f"{path / PLAN_FILE}: "
        raise DataFormatError(f"{where}{exc}; {REPRUNE}") from None


def folder_provenance(path: str | Path) -> dict[str, Any]:
    """How the pruned folder ``path`` was made, read from its own files: what ``tmpbench run`` records.

    ``base`` (model name), ``base_weights`` (fingerprint of the weights it was pruned from), ``pruner``,
    ``budget`` (as typed), ``pruner_settings``, ``seed``, ``original_params``, ``achieved_params``,
    ``budget_check``, ``calibration`` and ``recovery`` identities (recovery's with its held-out losses),
    ``plan_sha256`` (of the ``plan.json`` bytes: the
    canonical version-2 text of :meth:`Plan.to_json` for folders written now), ``plan_summary`` and the
    pruning ``seconds`` per stage. The run cache and ``--model DIR`` both read a folder through here, so a
    run on a folder records what a run on the spec that made it records. Folders written before the
    pruner, budget and settings were stored in ``pruned.json`` take them from ``plan.json``.
    """
    from tmpbench.provenance import sha256_file

    path = Path(path).expanduser()
    meta = read_json_member(path / PRUNED_FILE, path)
    plan = read_plan(path)
    base = meta.get("base") if isinstance(meta.get("base"), dict) else {}
    marker = read_json_member(path / MARKER_FILE, path) if (path / MARKER_FILE).is_file() else {}
    for key in ("original_params", "achieved_params"):
        _expect(_is_int(meta.get(key)) and meta[key] > 0, path / PRUNED_FILE, f"{key!r} must be a positive integer")
    settings = meta.get("pruner_settings", {})
    _expect(isinstance(settings, dict), path / PRUNED_FILE, "'pruner_settings' must be an object")
    return {
        "path": str(path),
        "base": base.get("model") or marker.get("model"),
        "base_weights": base.get("weights"),
        "pruner": plan.pruner,
        "budget": plan.budget.get("text") or meta.get("budget"),
        "budget_kind": plan.budget.get("kind", "params"),
        "pruner_settings": settings,
        "seed": meta.get("seed"),
        "original_params": int(meta["original_params"]),
        "achieved_params": int(meta["achieved_params"]),
        "budget_check": meta.get("budget_report"),
        "calibration": meta.get("calibration"),
        "recovery": _recovery_with_losses(meta),
        "plan_sha256": sha256_file(path / PLAN_FILE),
        "plan_summary": meta.get("plan_summary"),
        "seconds": meta.get("seconds") or {},
        "pruning_cost": meta.get("pruning_cost") or {},  # folders saved before it was recorded: {}
    }


def _recovery_with_losses(meta: dict[str, Any]) -> Any:
    """The recovery identity, with the distillation loss on the held-out ``dev`` batch before and after
    recovery (``held_out_before`` / ``held_out_after``) when the folder's recovery log has them."""
    ident, log = meta.get("recovery"), meta.get("recovery_log")
    if not isinstance(ident, dict) or not isinstance(log, dict):
        return ident
    losses = {k: log[k] for k in ("held_out_before", "held_out_after", "held_out_split") if log.get(k) is not None}
    return {**ident, **losses}


def load_pruned_hook(entry: Any, path: str | None, device: str = "cpu") -> Any:
    """``ModelEntry.loader``-shaped hook: ``load_model(DIR)`` routes a pruned folder here."""
    if path is None:
        raise TmpbenchError("a pruned model loads from its folder; pass --model DIR")
    return load_pruned(path, device=device)


def copy_pruned(src: str | Path, dst: str | Path) -> Path:
    """Copy a pruned folder (e.g. out of the run cache)."""
    shutil.copytree(src, dst)
    return Path(dst)
