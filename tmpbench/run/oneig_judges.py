"""Built-in judges for OneIG-Bench's reasoning, style and diversity dimensions, loaded from local paths.

What OneIG-Bench itself does (github.com/OneIG-Bench/OneIG-Benchmark, commit 41b4983):

* **Every dimension** first cuts the grid into cells (``scripts/utils/utils.py: split_mxn_grid``),
  drops any cell whose pixels are all ``(0, 0, 0)`` and writes the rest as ``.jpg`` with PIL's
  defaults, which the encoders then read back. :func:`oneig_cell` repeats that (black -> None,
  JPEG round trip in memory, same encoder settings), so per-cell values match OneIG's.
* **reasoning** (``scripts/reasoning/reasoning_score.py``, ``scripts/utils/inference.py: LLM2CLIP``):
  the reference answer is ``scripts/reasoning/gt_answer.json`` (ZH: ``gt_answer_zh.json``), a JSON
  object ``{"<3-digit id>": "<answer text>"}``. The image goes through ``CLIPImageProcessor`` of
  ``openai/clip-vit-large-patch14-336`` and ``microsoft/LLM2CLIP-Openai-L-14-336``'s
  ``get_image_features``; the answer through LLM2Vec (mean pooling, max length 512) over
  ``microsoft/LLM2CLIP-Llama-3-8B-Instruct-CC-Finetuned`` and ``get_text_features``. The cell's
  score is the plain cosine of the two (no scaling, no clipping); the prompt's is the mean over its
  non-black cells (:func:`reasoning_cell_score`).
* **style** (``scripts/style/style_score.py``): the prompt's style is OneIG-Bench.csv's ``class``
  column (identical to ``scripts/style/style.csv``), keyed as ``class.lower().replace(" ", "_")``;
  an empty class is skipped. Two encoders: CSD (``CSD_CLIP("vit_large")``: OpenAI CLIP ViT-L/14's
  visual tower without its projection, then ``normalize(feature @ last_layer_style)``; weights
  ``scripts/style/models/checkpoint.pth`` over ``ViT-L-14.pt``; torchvision Resize(224, bicubic),
  CenterCrop(224), CLIP mean/std) and the OneIG StyleEncoder (``xingpng/OneIG-StyleEncoder``, a
  transformers ``CLIPVisionModelWithProjection`` in bfloat16 with a default ``CLIPImageProcessor()``,
  L2-normalised ``image_embeds``). References: ``scripts/style/CSD_embed.pt`` and ``SE_embed.pt``,
  ``torch.save``'d dicts ``{style_key: Tensor (3, 768)}`` (float32) and ``{style_key: Tensor (3, 1280)}``
  (bfloat16), saved from CUDA. Cell score = ``(max(max_r csd.ref_r, 0) + max(max_r se.ref_r, 0)) / 2``
  (:func:`style_cell_score`); prompt = mean over cells.
* **diversity** (``scripts/diversity/diversity_score.py``): DreamSim (``dreamsim(pretrained=True)``:
  the "ensemble" type, normalised embeddings, its own preprocess) distance ``1 - cos`` for every
  pair of the prompt's non-black cells, averaged; prompts with fewer than two cells are skipped.

Decisions:

* **style has no substitute.** Its references live in CSD's and the StyleEncoder's embedding
  spaces; any other encoder would compare against meaningless vectors. Both encoders load with our
  dependencies: CSD is rebuilt on open_clip (its ViT has the same parameter names as OpenAI's
  ``clip`` package, so CSD's checkpoint loads key for key, and unmatched keys are an error rather
  than ignored), the StyleEncoder is a plain transformers model. Products are taken in float64 from
  the same embeddings (OneIG multiplies bfloat16 SE tensors: differences of bfloat16 rounding).
* **reasoning** uses LLM2CLIP when ``llm2vec`` and the three model folders are there (OneIG pins
  transformers 4.50 for LLM2CLIP's remote code; failures become one line). Otherwise a local CLIP
  model may stand in, but only when named explicitly with ``$TMPBENCH_ONEIG_REASONING_SUBSTITUTE``;
  its identity carries ``substitute_for`` and ``official: False`` (CLIP truncates answers to its
  context length, LLM2CLIP reads 512 tokens).
* **diversity** uses DreamSim when the ``dreamsim`` package and its cached weights are there
  (the folder is checked first, so dreamsim never starts a download); a CLIP image encoder may
  stand in when named with ``$TMPBENCH_ONEIG_DIVERSITY_SUBSTITUTE`` (same ``substitute_for`` record).

Environment (a ``module:factory`` in ``$TMPBENCH_ONEIG_<DIM>_JUDGE`` still overrides all of this):

===================================  ===========================================================
``TMPBENCH_ONEIG_SCRIPTS``           OneIG's ``scripts/`` folder (or the repository root): answers
                                     and style references are read from it
``TMPBENCH_ONEIG_REASONING_ANSWERS`` a ``gt_answer[_zh].json`` file (overrides the scripts folder)
``TMPBENCH_ONEIG_STYLE_REFS``        a folder with ``CSD_embed.pt`` and ``SE_embed.pt``
``TMPBENCH_ONEIG_REASONING_DIR``     folder with ``clip-vit-large-patch14-336/``,
                                     ``LLM2CLIP-Openai-L-14-336/``, ``LLM2CLIP-Llama-3-8B-Instruct-CC-Finetuned/``
``TMPBENCH_ONEIG_REASONING_SUBSTITUTE``  an open_clip folder (``open_clip_config.json`` + weights) or a
                                     transformers CLIP folder, used instead of LLM2CLIP
``TMPBENCH_ONEIG_STYLE_DIR``         OneIG's ``scripts/style/models`` layout: ``checkpoint.pth`` (CSD),
                                     optional ``ViT-L-14.pt``, and ``OneIG-StyleEncoder/``
``TMPBENCH_ONEIG_DIVERSITY_DIR``     DreamSim's ``cache_dir`` (``ensemble_lora/`` and the three
                                     ``*_pretrain.pth[.tar]`` files)
``TMPBENCH_ONEIG_DIVERSITY_SUBSTITUTE``  an open_clip or transformers CLIP folder instead of DreamSim
===================================  ===========================================================

Each judge answers ``reasoning_score(item, image)`` / ``style_score(item, image)`` /
``diversity_score(cells)`` (a float, or None where OneIG skips the cell or prompt) and ``identity()``.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tmpbench.errors import DataFormatError, MissingDependencyError, OfflineError, TmpbenchError

SCRIPTS_ENV = "TMPBENCH_ONEIG_SCRIPTS"
ANSWERS_ENV = "TMPBENCH_ONEIG_REASONING_ANSWERS"
STYLE_REFS_ENV = "TMPBENCH_ONEIG_STYLE_REFS"
REASONING_DIR_ENV = "TMPBENCH_ONEIG_REASONING_DIR"
REASONING_SUBSTITUTE_ENV = "TMPBENCH_ONEIG_REASONING_SUBSTITUTE"
STYLE_DIR_ENV = "TMPBENCH_ONEIG_STYLE_DIR"
DIVERSITY_DIR_ENV = "TMPBENCH_ONEIG_DIVERSITY_DIR"
DIVERSITY_SUBSTITUTE_ENV = "TMPBENCH_ONEIG_DIVERSITY_SUBSTITUTE"

LLM2CLIP_SUBDIRS = ("clip-vit-large-patch14-336", "LLM2CLIP-Openai-L-14-336", "LLM2CLIP-Llama-3-8B-Instruct-CC-Finetuned")
LLM2CLIP_NAME = "LLM2CLIP (microsoft/LLM2CLIP-Openai-L-14-336 + microsoft/LLM2CLIP-Llama-3-8B-Instruct-CC-Finetuned)"
DREAMSIM_NAME = "DreamSim ensemble (dreamsim package, dreamsim(pretrained=True))"
DREAMSIM_FILES = ("dino_vitb16_pretrain.pth", "open_clip_vitb16_pretrain.pth.tar", "clip_vitb16_pretrain.pth.tar", "ensemble_lora")
CSD_ARCH = "ViT-L-14-quickgelu"  # OpenAI's ViT-L/14 (QuickGELU), the backbone CSD_CLIP("vit_large") loads
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# ------------------------------------------------------------------------------------------------
# pure maths
def is_black(image: np.ndarray) -> bool:
    """True when every pixel is exactly (0, 0, 0): OneIG drops such cells (``is_black_image``)."""
    return not np.any(np.asarray(image))


def oneig_cell(image: np.ndarray, jpeg: bool = True):
    """The PIL image OneIG's encoders see for one cell, or None for an all-black cell.

    OneIG saves each cell with ``PIL.Image.save("<n>.jpg")`` (quality 75) and re-opens it; the same
    encode/decode happens here in memory.
    """
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise TmpbenchError(f"expected an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    if is_black(image):
        return None
    pil = Image.fromarray(image)
    if not jpeg:
        return pil
    buf = io.BytesIO()
    pil.save(buf, format="JPEG")
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


def _unit(x) -> "Any":
    import torch

    x = torch.as_tensor(x).to(torch.float64).reshape(-1)
    return x / x.norm().clamp_min(1e-12)


def reasoning_cell_score(image_embedding, text_embedding) -> float:
    """Cosine of one cell's image embedding and the answer's text embedding (OneIG: no clipping)."""
    return float(_unit(image_embedding) @ _unit(text_embedding))


def max_reference_similarity(embedding, references) -> float:
    """``max(max_r embedding . reference_r, 0)``: embeddings are used as given (both sides unit-norm in OneIG)."""
    import torch

    e = torch.as_tensor(embedding).to(torch.float64).reshape(-1)
    r = torch.as_tensor(references).to(torch.float64).reshape(-1, e.shape[0])
    return max(float((r @ e).max()), 0.0)


def style_cell_score(csd_embedding, csd_references, se_embedding, se_references) -> float:
    """OneIG's style score of one cell: the mean of CSD's and the StyleEncoder's clipped best match."""
    return (max_reference_similarity(csd_embedding, csd_references) + max_reference_similarity(se_embedding, se_references)) / 2


def style_key(style_class: str | None) -> str | None:
    """OneIG's key into the reference dicts (``"Chinese ink painting"`` -> ``"chinese_ink_painting"``); None if empty."""
    s = "" if style_class is None else str(style_class)
    if not s.strip() or s[:3] == "nan":
        return None
    return s.lower().replace(" ", "_")


def pairwise_cosine_distance(embeddings) -> float:
    """Mean over pairs i < j of ``1 - cos(e_i, e_j)`` (DreamSim's distance, averaged as OneIG does)."""
    from tmpbench.run.judges import mean_pairwise_distance

    return mean_pairwise_distance(embeddings)


# ------------------------------------------------------------------------------------------------
# reference files
def scripts_dir() -> Path | None:
    """OneIG's ``scripts`` folder from ``$TMPBENCH_ONEIG_SCRIPTS`` (the repository root also works)."""
    raw = os.environ.get(SCRIPTS_ENV)
    if not raw:
        return None
    p = Path(raw).expanduser()
    if not (p / "reasoning").is_dir() and not (p / "style").is_dir() and (p / "scripts").is_dir():
        p = p / "scripts"
    return p


def answers_path(zh: bool) -> Path:
    raw = os.environ.get(ANSWERS_ENV)
    if raw:
        return Path(raw).expanduser()
    root = scripts_dir()
    if root is None:
        raise MissingDependencyError(f"reasoning needs OneIG's reference answers: set ${SCRIPTS_ENV}=OneIG-Benchmark/scripts or ${ANSWERS_ENV}=gt_answer.json")
    return root / "reasoning" / f"gt_answer{'_zh' if zh else ''}.json"


def style_refs_dir() -> Path:
    raw = os.environ.get(STYLE_REFS_ENV)
    if raw:
        return Path(raw).expanduser()
    root = scripts_dir()
    if root is None:
        raise MissingDependencyError(f"style needs OneIG's reference embeddings: set ${SCRIPTS_ENV}=OneIG-Benchmark/scripts or ${STYLE_REFS_ENV}=folder with CSD_embed.pt")
    return root / "style"


def load_reasoning_answers(path: str | Path) -> dict[str, str]:
    """``gt_answer[_zh].json``: ``{"<id>": "<answer>"}`` -> dict; DataFormatError naming file and key."""
    path = Path(path)
    if not path.is_file():
        raise MissingDependencyError(f"reference answers {path} not found (OneIG's scripts/reasoning/gt_answer.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc}); expected {{\"<id>\": \"<answer text>\"}}") from None
    if not isinstance(data, dict) or not data:
        raise DataFormatError(f"{path}: expected a non-empty JSON object {{\"<id>\": \"<answer text>\"}}, got {type(data).__name__}")
    for key, value in data.items():
        if not isinstance(value, str) or not value.strip():
            raise DataFormatError(f"{path}: key {key!r}: expected the answer text (a non-empty string), got {type(value).__name__} {str(value)[:40]!r}")
    return dict(data)


def load_style_references(path: str | Path) -> dict[str, Any]:
    """``CSD_embed.pt`` / ``SE_embed.pt``: ``{style_key: Tensor (n_refs, D)}`` -> float32 CPU tensors.

    OneIG saved them from CUDA; they are mapped to the CPU and read with ``weights_only=True``.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise MissingDependencyError(f"style references {path} not found (OneIG's scripts/style/{path.name})")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; one line names the file
        raise DataFormatError(f"{path}: cannot be read as a torch.save'd dict of tensors ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    if not isinstance(data, dict) or not data:
        raise DataFormatError(f"{path}: expected a dict {{style: Tensor (n, D)}}, got {type(data).__name__}")
    out, dim = {}, None
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor) or value.ndim not in (1, 2) or value.numel() == 0:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise DataFormatError(f"{path}: key {key!r}: expected a (n_refs, D) tensor, got {shape}")
        value = value.detach().float().reshape(-1, value.shape[-1])
        if dim is not None and value.shape[1] != dim:
            raise DataFormatError(f"{path}: key {key!r}: embedding size {value.shape[1]} differs from the others ({dim})")
        dim = value.shape[1]
        out[key] = value
    return out


# ------------------------------------------------------------------------------------------------
# encoders
def _sha_files(files: Sequence[Path]) -> dict[str, str]:
    from tmpbench.metrics.features import sha256_file

    return {str(p.name): sha256_file(p) for p in files}


def _weight_files(folder: Path) -> list[Path]:
    exts = (".safetensors", ".bin", ".pth", ".pt", ".tar")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith(exts))


def _dtype_kw(dtype) -> dict:
    from tmpbench.metrics.features import library_version

    major = int(library_version("transformers").split(".")[0])
    return {"dtype": dtype} if major >= 5 else {"torch_dtype": dtype}


def _as_features(out):
    """transformers < 5 returns the projected features; 5.x a model output whose pooler_output holds them."""
    return out if hasattr(out, "float") else out.pooler_output


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:160] if lines else ''}"


class OpenClipEncoder:
    """An open_clip model from a local folder (``open_clip_config.json`` + weights): a stand-in judge."""

    library = "open_clip_torch"

    def __init__(self, path: str | Path, device: str = "cpu", substitute_for: str | None = None) -> None:
        import open_clip
        import torch

        self.path, self.device, self.substitute_for = Path(path), device, substitute_for
        try:
            self.model, _, self.preprocess = open_clip.create_model_and_transforms(f"local-dir:{self.path}", device=device)
            self.tokenizer = open_clip.get_tokenizer(f"local-dir:{self.path}")
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise OfflineError(f"cannot load open_clip from {self.path} ({_one_line(exc)})") from None
        self.model.eval()
        self._torch = torch

    def embed_images(self, pil_images) -> Any:
        with self._torch.no_grad():
            x = self._torch.stack([self.preprocess(im) for im in pil_images]).to(self.device)
            return self.model.encode_image(x).float().cpu()

    def embed_texts(self, texts: Sequence[str]) -> Any:
        with self._torch.no_grad():
            return self.model.encode_text(self.tokenizer(list(texts)).to(self.device)).float().cpu()

    def identity(self) -> dict:
        from tmpbench.metrics.features import library_version

        cfg = json.loads((self.path / "open_clip_config.json").read_text(encoding="utf-8"))
        return {
            "name": f"open_clip local-dir {self.path.name}",
            "model_cfg": cfg.get("model_cfg", cfg),
            "library": self.library,
            "library_version": library_version(self.library),
            "weights_path": str(self.path),
            "weights_sha256": _sha_files(_weight_files(self.path)),
            "substitute_for": self.substitute_for,
            "official": self.substitute_for is None,
        }


class TransformersClipEncoder:
    """A transformers CLIP folder (``CLIPModel``, or a vision tower with projection for images only): a stand-in."""

    library = "transformers"

    def __init__(self, path: str | Path, device: str = "cpu", substitute_for: str | None = None, need_text: bool = True) -> None:
        import torch
        from transformers import AutoConfig, CLIPImageProcessor, CLIPModel, CLIPVisionModelWithProjection

        self.path, self.device, self.substitute_for = Path(path), device, substitute_for
        self._torch = torch
        try:
            kind = AutoConfig.from_pretrained(self.path, local_files_only=True).model_type
            self.image_processor = CLIPImageProcessor.from_pretrained(self.path, local_files_only=True)
            if kind == "clip":
                self.model = CLIPModel.from_pretrained(self.path, local_files_only=True).to(device).eval()
            elif kind == "clip_vision_model" and not need_text:
                self.model = CLIPVisionModelWithProjection.from_pretrained(self.path, local_files_only=True).to(device).eval()
            else:
                raise ValueError(f"model_type {kind!r} is not a CLIP model{' with a text tower' if need_text else ''}")
            self.tokenizer = None
            if need_text:
                from transformers import AutoTokenizer

                self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise OfflineError(f"cannot load a transformers CLIP from {self.path} ({_one_line(exc)})") from None

    def embed_images(self, pil_images) -> Any:
        with self._torch.no_grad():
            px = self.image_processor(images=list(pil_images), return_tensors="pt").pixel_values.to(self.device)
            if hasattr(self.model, "get_image_features"):
                return _as_features(self.model.get_image_features(pixel_values=px)).float().cpu()
            return self.model(pixel_values=px).image_embeds.float().cpu()

    def embed_texts(self, texts: Sequence[str]) -> Any:
        with self._torch.no_grad():
            limit = self.model.config.text_config.max_position_embeddings
            tok = self.tokenizer(list(texts), padding=True, truncation=True, max_length=limit, return_tensors="pt").to(self.device)
            return _as_features(self.model.get_text_features(**tok)).float().cpu()

    def identity(self) -> dict:
        from tmpbench.metrics.features import library_version

        return {
            "name": f"transformers CLIP {self.path.name}",
            "library": self.library,
            "library_version": library_version(self.library),
            "weights_path": str(self.path),
            "weights_sha256": _sha_files(_weight_files(self.path)),
            "substitute_for": self.substitute_for,
            "official": self.substitute_for is None,
        }


def load_clip_substitute(path: str | Path, device: str, substitute_for: str, need_text: bool):
    """An explicitly named CLIP stand-in: an open_clip folder or a transformers CLIP folder."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise OfflineError(f"substitute judge folder {path} does not exist; give a local open_clip or transformers CLIP folder")
    if (path / "open_clip_config.json").is_file():
        from tmpbench.metrics.features import library_version

        if library_version("open_clip_torch") == "not installed":
            raise MissingDependencyError("an open_clip substitute judge needs open_clip: pip install open_clip_torch")
        return OpenClipEncoder(path, device, substitute_for)
    if (path / "config.json").is_file():
        return TransformersClipEncoder(path, device, substitute_for, need_text=need_text)
    raise OfflineError(f"{path} holds neither open_clip_config.json (open_clip) nor config.json (transformers CLIP)")


class LLM2CLIPEncoder:
    """OneIG's reasoning judge: LLM2CLIP's CLIP ViT-L/14-336 image tower and LLM2Vec text side (exact)."""

    def __init__(self, root: str | Path, device: str = "cpu") -> None:
        import torch

        root = Path(root).expanduser()
        if not root.is_dir():
            raise OfflineError(f"LLM2CLIP folder {root} does not exist; set ${REASONING_DIR_ENV} to a folder holding {', '.join(LLM2CLIP_SUBDIRS)}")
        missing = [d for d in LLM2CLIP_SUBDIRS if not (root / d).is_dir()]
        if missing:
            raise OfflineError(f"{root} lacks {', '.join(missing)}/ (local copies of the hub repos OneIG's LLM2CLIP loads)")
        try:
            import llm2vec
        except ImportError:
            raise MissingDependencyError("LLM2CLIP's text side needs llm2vec: pip install llm2vec (OneIG runs it with transformers==4.50.0)") from None
        from transformers import AutoConfig, AutoModel, AutoTokenizer, CLIPImageProcessor

        proc_dir, clip_dir, llm_dir = (root / d for d in LLM2CLIP_SUBDIRS)
        try:
            self.processor = CLIPImageProcessor.from_pretrained(proc_dir, local_files_only=True)
            self.model = AutoModel.from_pretrained(clip_dir, trust_remote_code=True, local_files_only=True, **_dtype_kw(torch.bfloat16)).to(device).eval()
            config = AutoConfig.from_pretrained(llm_dir, trust_remote_code=True, local_files_only=True)
            llm = AutoModel.from_pretrained(llm_dir, config=config, trust_remote_code=True, local_files_only=True, **_dtype_kw(torch.bfloat16))
            tokenizer = AutoTokenizer.from_pretrained(llm_dir, local_files_only=True)
        except Exception as exc:  # remote code fails in many ways across transformers versions
            raise OfflineError(f"cannot load LLM2CLIP from {root} ({_one_line(exc)}); OneIG uses transformers==4.50.0") from None
        # OneIG's workaround: LLM2Vec picks the Llama-3-Instruct prompt format from this name
        llm.config._name_or_path = "meta-llama/Meta-Llama-3-8B-Instruct"
        self.l2v = llm2vec.LLM2Vec(llm, tokenizer, pooling_mode="mean", max_length=512, doc_max_length=512)
        self.root, self.device, self._torch = root, device, torch

    def embed_images(self, pil_images) -> Any:
        torch = self._torch
        px = self.processor(images=list(pil_images), return_tensors="pt").pixel_values.to(self.device)
        with torch.no_grad(), torch.autocast(torch.device(self.device).type):
            return _as_features(self.model.get_image_features(px)).float().cpu()

    def embed_texts(self, texts: Sequence[str]) -> Any:
        torch = self._torch
        feats = self.l2v.encode(list(texts), convert_to_tensor=True).to(self.device)
        with torch.no_grad(), torch.autocast(torch.device(self.device).type):
            return _as_features(self.model.get_text_features(feats)).float().cpu()

    def identity(self) -> dict:
        from tmpbench.metrics.features import library_version

        return {
            "name": LLM2CLIP_NAME,
            "library": "transformers+llm2vec",
            "library_version": f"transformers {library_version('transformers')}, llm2vec {library_version('llm2vec')}",
            "weights_path": str(self.root),
            "weights_sha256": {d: _sha_files(_weight_files(self.root / d)) for d in LLM2CLIP_SUBDIRS},
            "substitute_for": None,
            "official": True,
        }


class CSDStyleEncoder:
    """CSD (Contrastive Style Descriptors) rebuilt on open_clip: ``normalize(ViT(x) @ last_layer_style)``.

    ``checkpoint`` is CSD's ``checkpoint.pth`` (``{"model_state_dict": {"[module.]backbone.*",
    "[module.]last_layer_style", ...}}``); ``openai_weights`` is OpenAI's ``ViT-L-14.pt`` that
    OneIG loads underneath it (needed only when the checkpoint lacks backbone weights). ``arch``
    is an open_clip architecture (tests pass a tiny one).
    """

    def __init__(self, checkpoint: str | Path, openai_weights: str | Path | None = None, device: str = "cpu", arch: str = CSD_ARCH) -> None:
        from tmpbench.metrics.features import library_version

        if library_version("open_clip_torch") == "not installed":
            raise MissingDependencyError("CSD is rebuilt on open_clip: pip install open_clip_torch")
        import open_clip
        import torch
        from torchvision import transforms

        self.checkpoint = Path(checkpoint)
        self.openai_weights = Path(openai_weights) if openai_weights else None
        if not self.checkpoint.is_file():
            raise OfflineError(f"CSD checkpoint {self.checkpoint} not found (OneIG's scripts/style/models/checkpoint.pth)")
        if self.openai_weights is not None:
            visual = open_clip.load_openai_model(str(self.openai_weights), precision="fp32", device="cpu").visual
        else:
            visual = open_clip.create_model(arch, device="cpu").visual
        try:
            ckpt = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except Exception:
            # CSD's training checkpoint pickles more than tensors; OneIG loads it the same way
            ckpt = torch.load(self.checkpoint, map_location="cpu", weights_only=False)
        sd = ckpt.get("model_state_dict", ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(sd, dict):
            raise DataFormatError(f"{self.checkpoint}: expected a dict with 'model_state_dict'")
        sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
        if "last_layer_style" not in sd:
            raise DataFormatError(f"{self.checkpoint}: key 'last_layer_style' missing from model_state_dict (not a CSD checkpoint?)")
        backbone = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
        visual.proj = None  # CSD_CLIP drops the CLIP projection; the style head replaces it
        result = visual.load_state_dict(backbone, strict=False)
        if result.unexpected_keys:
            raise DataFormatError(f"{self.checkpoint}: backbone keys not in a {arch} vision tower: {', '.join(result.unexpected_keys[:4])}")
        if result.missing_keys and self.openai_weights is None:
            raise DataFormatError(f"{self.checkpoint}: backbone lacks {', '.join(result.missing_keys[:4])} and no ViT-L-14.pt was given to fill them")
        self.style_head = sd["last_layer_style"].float().to(device)
        self.visual = visual.float().to(device).eval()
        size = self.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else int(size)
        self.preprocess = transforms.Compose([
            transforms.Resize(size=size, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize(CLIP_MEAN, CLIP_STD),
        ])
        self.device, self.arch, self._torch = device, arch, torch

    def embed_images(self, pil_images) -> Any:
        torch = self._torch
        with torch.no_grad():
            x = torch.stack([self.preprocess(im.convert("RGB")) for im in pil_images]).to(self.device)
            out = self.visual(x) @ self.style_head
            return torch.nn.functional.normalize(out, dim=1, p=2).cpu()

    def identity(self) -> dict:
        from tmpbench.metrics.features import library_version

        files = [self.checkpoint] + ([self.openai_weights] if self.openai_weights else [])
        return {
            "name": "CSD (CSD_CLIP vit_large, style head)",
            "arch": self.arch,
            "library": "open_clip_torch",
            "library_version": library_version("open_clip_torch"),
            "weights_path": str(self.checkpoint),
            "weights_sha256": _sha_files(files),
        }


class SEStyleEncoder:
    """OneIG's StyleEncoder: a transformers CLIPVisionModelWithProjection with a default CLIPImageProcessor()."""

    def __init__(self, path: str | Path, device: str = "cpu", dtype: Any = None) -> None:
        import torch
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        self.path = Path(path)
        if not self.path.is_dir():
            raise OfflineError(f"StyleEncoder folder {self.path} does not exist (a local copy of xingpng/OneIG-StyleEncoder)")
        self.dtype = torch.bfloat16 if dtype is None else dtype  # OneIG runs it in bfloat16
        try:
            self.model = CLIPVisionModelWithProjection.from_pretrained(self.path, local_files_only=True).to(device, dtype=self.dtype).eval()
        except (OSError, ValueError) as exc:
            raise OfflineError(f"cannot load the StyleEncoder from {self.path} ({_one_line(exc)})") from None
        self.processor = CLIPImageProcessor()  # OneIG uses the defaults, not the folder's processor
        self.device, self._torch = device, torch

    def embed_images(self, pil_images) -> Any:
        torch = self._torch
        px = self.processor(images=[im.convert("RGB") for im in pil_images], return_tensors="pt").pixel_values.to(self.device, dtype=self.dtype)
        with torch.no_grad():
            emb = self.model(px).image_embeds
            return torch.nn.functional.normalize(emb, p=2, dim=-1).float().cpu()

    def identity(self) -> dict:
        from tmpbench.metrics.features import library_version

        return {
            "name": "OneIG-StyleEncoder (xingpng/OneIG-StyleEncoder)",
            "dtype": str(self.dtype).replace("torch.", ""),
            "library": "transformers",
            "library_version": library_version("transformers"),
            "weights_path": str(self.path),
            "weights_sha256": _sha_files(_weight_files(self.path)),
        }


class DreamSimEncoder:
    """DreamSim's ensemble from its local cache folder; ``embed`` per cell, distance ``1 - cos``."""

    def __init__(self, cache_dir: str | Path, device: str = "cpu") -> None:
        self.cache_dir = Path(cache_dir).expanduser()
        if not self.cache_dir.is_dir():
            raise OfflineError(f"DreamSim folder {self.cache_dir} does not exist; set ${DIVERSITY_DIR_ENV} to dreamsim's cache_dir")
        missing = [f for f in DREAMSIM_FILES if not (self.cache_dir / f).exists()]
        if missing:  # dreamsim() would start a download
            raise OfflineError(f"DreamSim folder {self.cache_dir} lacks {', '.join(missing)} (run dreamsim(pretrained=True, cache_dir=...) once online)")
        try:
            from dreamsim import dreamsim
        except ImportError:
            raise MissingDependencyError("diversity needs DreamSim: pip install dreamsim") from None
        import torch

        try:
            self.model, self.preprocess = dreamsim(pretrained=True, device=device, cache_dir=str(self.cache_dir))
        except Exception as exc:
            raise OfflineError(f"cannot load DreamSim from {self.cache_dir} ({_one_line(exc)})") from None
        self.device, self._torch = device, torch

    def embed_images(self, pil_images) -> Any:
        torch = self._torch
        with torch.no_grad():  # one image at a time, as OneIG calls model(img_a, img_b)
            return torch.cat([self.model.embed(self.preprocess(im).to(self.device)).reshape(1, -1).float().cpu() for im in pil_images])

    def identity(self) -> dict:
        from tmpbench.metrics.features import library_version

        return {
            "name": DREAMSIM_NAME,
            "library": "dreamsim",
            "library_version": library_version("dreamsim"),
            "weights_path": str(self.cache_dir),
            "weights_sha256": _sha_files([p for f in DREAMSIM_FILES for p in ([self.cache_dir / f] if (self.cache_dir / f).is_file() else _weight_files(self.cache_dir / f))]),
            "substitute_for": None,
            "official": True,
        }


# ------------------------------------------------------------------------------------------------
# judges
def _cells(images: Sequence[np.ndarray], jpeg: bool) -> list:
    return [c for c in (oneig_cell(im, jpeg) for im in images) if c is not None]


class ReasoningJudge:
    """Cosine of a cell and its prompt's reference answer in an image-text judge's joint space."""

    def __init__(self, encoder, answers: dict[str, str], answers_file: str | Path, jpeg_cells: bool = True) -> None:
        self.encoder, self.answers, self.answers_file, self.jpeg_cells = encoder, answers, Path(answers_file), jpeg_cells
        self._text_cache: dict[str, Any] = {}

    def reasoning_score(self, item, image: np.ndarray) -> float | None:
        if item.id not in self.answers:
            raise DataFormatError(f"{self.answers_file}: no reference answer for prompt id {item.id!r}")
        cell = oneig_cell(image, self.jpeg_cells)
        if cell is None:
            return None
        answer = self.answers[item.id]
        if answer not in self._text_cache:
            self._text_cache[answer] = self.encoder.embed_texts([answer])[0]
        return reasoning_cell_score(self.encoder.embed_images([cell])[0], self._text_cache[answer])

    def identity(self) -> dict:
        from tmpbench.metrics.features import sha256_file

        return {
            "dimension": "reasoning",
            "computation": "cos(image, answer) per non-black cell (OneIG scripts/reasoning/reasoning_score.py)",
            "cells": "JPEG round trip, black cells dropped" if self.jpeg_cells else "raw cells, black cells dropped",
            "answers_file": str(self.answers_file),
            "answers_sha256": sha256_file(self.answers_file),
            "encoder": self.encoder.identity(),
        }


class StyleJudge:
    """OneIG's style score: CSD and StyleEncoder best matches against the style's references, averaged."""

    def __init__(self, csd, se, csd_refs: dict, se_refs: dict, refs_dir: str | Path, jpeg_cells: bool = True) -> None:
        self.csd, self.se, self.csd_refs, self.se_refs = csd, se, csd_refs, se_refs
        self.refs_dir, self.jpeg_cells = Path(refs_dir), jpeg_cells
        missing = sorted(set(csd_refs) ^ set(se_refs))
        if missing:
            raise DataFormatError(f"{self.refs_dir}: CSD_embed.pt and SE_embed.pt disagree on styles: {', '.join(missing[:5])}")

    def style_score(self, item, image: np.ndarray) -> float | None:
        key = style_key(item.metadata.get("class"))
        if key is None:  # OneIG skips Anime_Stylization prompts without a class
            return None
        if key not in self.csd_refs:
            raise DataFormatError(f"{self.refs_dir / 'CSD_embed.pt'}: no reference for style {key!r} (prompt id {item.id!r})")
        cell = oneig_cell(image, self.jpeg_cells)
        if cell is None:
            return None
        return style_cell_score(self.csd.embed_images([cell])[0], self.csd_refs[key], self.se.embed_images([cell])[0], self.se_refs[key])

    def identity(self) -> dict:
        from tmpbench.metrics.features import sha256_file

        return {
            "dimension": "style",
            "computation": "(max(max_r CSD.ref, 0) + max(max_r SE.ref, 0)) / 2 per non-black cell (OneIG scripts/style/style_score.py)",
            "cells": "JPEG round trip, black cells dropped" if self.jpeg_cells else "raw cells, black cells dropped",
            "references": {n: sha256_file(self.refs_dir / n) for n in ("CSD_embed.pt", "SE_embed.pt") if (self.refs_dir / n).is_file()},
            "references_dir": str(self.refs_dir),
            "csd": self.csd.identity(),
            "style_encoder": self.se.identity(),
            "substitute_for": None,
            "official": True,
        }


class DiversityJudge:
    """Mean ``1 - cos`` over pairs of a prompt's non-black cells in a perceptual embedding (OneIG: DreamSim)."""

    def __init__(self, encoder, jpeg_cells: bool = True) -> None:
        self.encoder, self.jpeg_cells = encoder, jpeg_cells

    def diversity_score(self, cells: Sequence[np.ndarray]) -> float | None:
        kept = _cells(cells, self.jpeg_cells)
        if len(kept) < 2:  # OneIG skips such prompts
            return None
        return pairwise_cosine_distance(self.encoder.embed_images(kept))

    def identity(self) -> dict:
        return {
            "dimension": "diversity",
            "computation": "mean over cell pairs of 1 - cos (OneIG scripts/diversity/diversity_score.py)",
            "cells": "JPEG round trip, black cells dropped" if self.jpeg_cells else "raw cells, black cells dropped",
            "encoder": self.encoder.identity(),
        }


# ------------------------------------------------------------------------------------------------
# loaders
def load_reasoning_judge(device: str = "cpu", zh: bool = False) -> ReasoningJudge | None:
    exact, sub = os.environ.get(REASONING_DIR_ENV), os.environ.get(REASONING_SUBSTITUTE_ENV)
    if not exact and not sub:
        return None
    path = answers_path(zh)
    answers = load_reasoning_answers(path)
    if exact:
        encoder = LLM2CLIPEncoder(exact, device)
    else:
        encoder = load_clip_substitute(sub, device, LLM2CLIP_NAME, need_text=True)
    return ReasoningJudge(encoder, answers, path)


def load_style_judge(device: str = "cpu", style_dir: str | Path | None = None, refs_dir: str | Path | None = None, csd_arch: str = CSD_ARCH) -> StyleJudge | None:
    raw = style_dir if style_dir is not None else os.environ.get(STYLE_DIR_ENV)
    if not raw:
        return None
    root = Path(raw).expanduser()
    if not root.is_dir():
        raise OfflineError(f"style model folder {root} does not exist; set ${STYLE_DIR_ENV} to a folder with CSD's checkpoint.pth and OneIG-StyleEncoder/")
    refs = Path(refs_dir) if refs_dir is not None else style_refs_dir()
    csd_refs = load_style_references(refs / "CSD_embed.pt")
    se_refs = load_style_references(refs / "SE_embed.pt")
    vit = root / "ViT-L-14.pt"
    csd = CSDStyleEncoder(root / "checkpoint.pth", vit if vit.is_file() else None, device, arch=csd_arch)
    se = SEStyleEncoder(root / "OneIG-StyleEncoder", device)
    return StyleJudge(csd, se, csd_refs, se_refs, refs)


def load_diversity_judge(device: str = "cpu") -> DiversityJudge | None:
    exact, sub = os.environ.get(DIVERSITY_DIR_ENV), os.environ.get(DIVERSITY_SUBSTITUTE_ENV)
    if exact:
        return DiversityJudge(DreamSimEncoder(exact, device))
    if sub:
        return DiversityJudge(load_clip_substitute(sub, device, DREAMSIM_NAME, need_text=False))
    return None


def load_builtin_judge(name: str, device: str = "cpu", zh: bool = False):
    """The built-in judge of ``oneig_reasoning`` / ``oneig_style`` / ``oneig_diversity`` from the environment, or None."""
    if name == "oneig_reasoning":
        return load_reasoning_judge(device, zh)
    if name == "oneig_style":
        return load_style_judge(device)
    if name == "oneig_diversity":
        return load_diversity_judge(device)
    raise TmpbenchError(f"no built-in OneIG judge for {name!r}; expected oneig_reasoning, oneig_style or oneig_diversity")
