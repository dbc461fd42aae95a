"""OneIG-Bench's judges and where they come from: a VQA judge, and built-in reasoning, style and
diversity judges loaded from local folders named by environment variables.

What OneIG-Bench itself does (github.com/OneIG-Bench/OneIG-Benchmark, commit 41b4983), and what the
judges here repeat (the maths: :mod:`tmpbench.scoring.oneig.maths`; the encoders:
:mod:`tmpbench.metrics.backbones`):

* **alignment / text** -- a VQA judge (OneIG: Qwen2.5-VL-7B) answers each question per cell, or reads
  the cell's text (:class:`TransformersVQAJudge`, a local transformers image-text-to-text model);
* **reasoning** (``scripts/reasoning/reasoning_score.py``) -- LLM2CLIP: the image through
  ``CLIPImageProcessor`` of ``openai/clip-vit-large-patch14-336`` and LLM2CLIP's
  ``get_image_features``; the reference answer through LLM2Vec (mean pooling, max length 512) and
  ``get_text_features``; cell score = the plain cosine; prompt = mean over non-black cells
  (:class:`ReasoningJudge`);
* **style** (``scripts/style/style_score.py``) -- CSD and OneIG's StyleEncoder against the style's
  three references each; the prompt's style is OneIG-Bench.csv's ``class`` (:class:`StyleJudge`);
* **diversity** (``scripts/diversity/diversity_score.py``) -- DreamSim's ``1 - cos`` for every pair of
  a prompt's non-black cells, averaged; prompts with fewer than two cells are skipped
  (:class:`DiversityJudge`).

Decisions:

* **style has no substitute.** Its references live in CSD's and the StyleEncoder's embedding
  spaces; any other encoder would compare against meaningless vectors. Products are taken in
  float64 from the same embeddings (OneIG multiplies bfloat16 SE tensors: differences of bfloat16
  rounding).
* **reasoning** uses LLM2CLIP when ``llm2vec`` and the three model folders are there. Otherwise a
  local CLIP model may stand in, but only when named explicitly with
  ``$TMPBENCH_ONEIG_REASONING_SUBSTITUTE``; its identity carries ``substitute_for`` and
  ``official: False`` (CLIP truncates answers to its context length, LLM2CLIP reads 512 tokens).
* **diversity** uses DreamSim when the ``dreamsim`` package and its cached weights are there; a CLIP
  image encoder may stand in when named with ``$TMPBENCH_ONEIG_DIVERSITY_SUBSTITUTE``.

Environment (a ``module:factory`` in ``$TMPBENCH_ONEIG_<DIM>_JUDGE`` overrides the built-in judge;
reference files: :mod:`tmpbench.scoring.oneig.references`):

=========================================  =====================================================
``TMPBENCH_ONEIG_VQA_JUDGE``               a local transformers image-text-to-text model folder
``TMPBENCH_ONEIG_REASONING_DIR``           folder with ``clip-vit-large-patch14-336/``,
                                           ``LLM2CLIP-Openai-L-14-336/``,
                                           ``LLM2CLIP-Llama-3-8B-Instruct-CC-Finetuned/``
``TMPBENCH_ONEIG_REASONING_SUBSTITUTE``    an open_clip or transformers CLIP folder instead of LLM2CLIP
``TMPBENCH_ONEIG_STYLE_DIR``               OneIG's ``scripts/style/models`` layout: ``checkpoint.pth``
                                           (CSD), optional ``ViT-L-14.pt``, and ``OneIG-StyleEncoder/``
``TMPBENCH_ONEIG_DIVERSITY_DIR``           DreamSim's ``cache_dir`` (``ensemble_lora/`` and the three
                                           ``*_pretrain.pth[.tar]`` files)
``TMPBENCH_ONEIG_DIVERSITY_SUBSTITUTE``    an open_clip or transformers CLIP folder instead of DreamSim
=========================================  =====================================================

Each built-in judge answers ``reasoning_score(item, image)`` / ``style_score(item, image)`` /
``diversity_score(cells)`` (a float, or None where OneIG skips the cell or prompt) and ``identity()``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tmpbench.errors import DataFormatError, OfflineError, TmpbenchError
from tmpbench.metrics.backbones.clip_folder import load_clip_substitute
from tmpbench.metrics.backbones.csd import CSD_ARCH, CSDStyleEncoder
from tmpbench.metrics.backbones.dreamsim_ensemble import DIVERSITY_DIR_ENV, DREAMSIM_NAME, DreamSimEncoder
from tmpbench.metrics.backbones.llm2clip import LLM2CLIP_NAME, REASONING_DIR_ENV, LLM2CLIPEncoder
from tmpbench.metrics.backbones.style_encoder import SEStyleEncoder
from tmpbench.provenance import library_version, sha256_file
from tmpbench.scoring.oneig.maths import oneig_cell, pairwise_cosine_distance, reasoning_cell_score, style_cell_score, style_key
from tmpbench.scoring.oneig.references import answers_path, load_reasoning_answers, load_style_references, style_refs_dir

VQA_ENV = "TMPBENCH_ONEIG_VQA_JUDGE"  # local directory of a transformers image-text-to-text model
REASONING_SUBSTITUTE_ENV = "TMPBENCH_ONEIG_REASONING_SUBSTITUTE"
STYLE_DIR_ENV = "TMPBENCH_ONEIG_STYLE_DIR"
DIVERSITY_SUBSTITUTE_ENV = "TMPBENCH_ONEIG_DIVERSITY_SUBSTITUTE"


# ------------------------------------------------------------------------------------------------
# the VQA judge (alignment, text) and plug-in judges
class VQAJudge(Protocol):
    def answer(self, images: list[np.ndarray], question: str) -> list[bool]: ...
    def ocr(self, images: list[np.ndarray]) -> list[str]: ...
    def identity(self) -> dict: ...


class TransformersVQAJudge:
    """A local transformers image-text-to-text model (e.g. Qwen2.5-VL) answering yes/no and OCR prompts."""

    def __init__(self, path: str | Path, device: str = "cpu", max_new_tokens: int = 128) -> None:
        path = Path(path).expanduser()
        if not path.is_dir():
            raise OfflineError(f"VQA judge directory {path} does not exist; set ${VQA_ENV} to a local model folder")
        from transformers import AutoModelForImageTextToText, AutoProcessor

        try:
            self.processor = AutoProcessor.from_pretrained(path, local_files_only=True)
            self.model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True).to(device).eval()
        except (OSError, ValueError) as exc:
            raise OfflineError(f"cannot load the VQA judge from {path} ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
        self.path, self.device, self.max_new_tokens = path, device, max_new_tokens

    def _ask(self, image: np.ndarray, text: str, max_new_tokens: int) -> str:
        import torch
        from PIL import Image

        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = self.processor(text=[prompt], images=[Image.fromarray(image)], return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        return self.processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[0].strip()

    def answer(self, images, question):
        q = f"{question} Please answer Yes or No."
        return [self._ask(im, q, 4).lower().startswith("yes") for im in images]

    def ocr(self, images):
        return [self._ask(im, "Recognize all the text in the image. Output only the text.", self.max_new_tokens) for im in images]

    def identity(self) -> dict:
        weights = sorted(self.path.glob("*.safetensors"))
        return {
            "name": "vqa-judge",
            "library": "transformers",
            "library_version": library_version("transformers"),
            "weights_path": str(self.path),
            "weights_sha256": {p.name: sha256_file(p) for p in weights},
        }


def factory_from_env(var: str, device: str):
    """``module:factory`` in ``$var`` -> ``factory(device)``; None when unset."""
    target = os.environ.get(var)
    if not target:
        return None
    from tmpbench.models.base import resolve_target

    try:
        return resolve_target(target)(device)
    except (ImportError, AttributeError) as exc:
        raise TmpbenchError(f"${var}={target} cannot be imported ({exc}); expected module:factory") from None


# ------------------------------------------------------------------------------------------------
# built-in judges (reasoning, style, diversity)
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


def load_style_judge(
    device: str = "cpu", style_dir: str | Path | None = None, refs_dir: str | Path | None = None, csd_arch: str = CSD_ARCH
) -> StyleJudge | None:
    raw = style_dir if style_dir is not None else os.environ.get(STYLE_DIR_ENV)
    if not raw:
        return None
    root = Path(raw).expanduser()
    if not root.is_dir():
        raise OfflineError(
            f"style model folder {root} does not exist; set ${STYLE_DIR_ENV} to a folder with CSD's checkpoint.pth and OneIG-StyleEncoder/"
        )
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
