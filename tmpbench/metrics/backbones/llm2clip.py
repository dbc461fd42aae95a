"""LLM2CLIP, OneIG-Bench's reasoning judge: a CLIP ViT-L/14-336 image tower and an LLM2Vec text side.

The three folders are local copies of the hub repos OneIG loads (``LLM2CLIP_SUBDIRS``); the text
side needs the ``llm2vec`` package (OneIG runs it with transformers 4.50). Loading failures of the
remote code become one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tmpbench.errors import MissingDependencyError, OfflineError
from tmpbench.metrics.backbones.files import one_line, weight_files, weights_sha256
from tmpbench.metrics.backbones.hf_clip import dtype_kwargs, projected_features
from tmpbench.provenance import library_version

#: the environment variable tmpbench reads the LLM2CLIP folder from (named in the errors below)
REASONING_DIR_ENV = "TMPBENCH_ONEIG_REASONING_DIR"
LLM2CLIP_SUBDIRS = ("clip-vit-large-patch14-336", "LLM2CLIP-Openai-L-14-336", "LLM2CLIP-Llama-3-8B-Instruct-CC-Finetuned")
LLM2CLIP_NAME = "LLM2CLIP (microsoft/LLM2CLIP-Openai-L-14-336 + microsoft/LLM2CLIP-Llama-3-8B-Instruct-CC-Finetuned)"


class LLM2CLIPEncoder:
    """OneIG's reasoning judge: LLM2CLIP's CLIP ViT-L/14-336 image tower and LLM2Vec text side (exact)."""

    def __init__(self, root: str | Path, device: str = "cpu") -> None:
        import torch

        root = Path(root).expanduser()
        if not root.is_dir():
            raise OfflineError(
                f"LLM2CLIP folder {root} does not exist; set ${REASONING_DIR_ENV} to a folder holding {', '.join(LLM2CLIP_SUBDIRS)}"
            )
        missing = [d for d in LLM2CLIP_SUBDIRS if not (root / d).is_dir()]
        if missing:
            raise OfflineError(f"{root} lacks {', '.join(missing)}/ (local copies of the hub repos OneIG's LLM2CLIP loads)")
        try:
            import llm2vec
        except ImportError:
            raise MissingDependencyError(
                "LLM2CLIP's text side needs llm2vec: pip install llm2vec (OneIG runs it with transformers==4.50.0)"
            ) from None
        from transformers import AutoConfig, AutoModel, AutoTokenizer, CLIPImageProcessor

        proc_dir, clip_dir, llm_dir = (root / d for d in LLM2CLIP_SUBDIRS)
        try:
            self.processor = CLIPImageProcessor.from_pretrained(proc_dir, local_files_only=True)
            bf16 = dtype_kwargs(torch.bfloat16)
            self.model = AutoModel.from_pretrained(clip_dir, trust_remote_code=True, local_files_only=True, **bf16).to(device).eval()
            config = AutoConfig.from_pretrained(llm_dir, trust_remote_code=True, local_files_only=True)
            llm = AutoModel.from_pretrained(llm_dir, config=config, trust_remote_code=True, local_files_only=True, **bf16)
            tokenizer = AutoTokenizer.from_pretrained(llm_dir, local_files_only=True)
        except Exception as exc:  # remote code fails in many ways across transformers versions
            raise OfflineError(f"cannot load LLM2CLIP from {root} ({one_line(exc)}); OneIG uses transformers==4.50.0") from None
        # OneIG's workaround: LLM2Vec picks the Llama-3-Instruct prompt format from this name
        llm.config._name_or_path = "meta-llama/Meta-Llama-3-8B-Instruct"
        self.l2v = llm2vec.LLM2Vec(llm, tokenizer, pooling_mode="mean", max_length=512, doc_max_length=512)
        self.root, self.device, self._torch = root, device, torch

    def embed_images(self, pil_images) -> Any:
        torch = self._torch
        px = self.processor(images=list(pil_images), return_tensors="pt").pixel_values.to(self.device)
        with torch.no_grad(), torch.autocast(torch.device(self.device).type):
            return projected_features(self.model.get_image_features(px)).float().cpu()

    def embed_texts(self, texts: Sequence[str]) -> Any:
        torch = self._torch
        feats = self.l2v.encode(list(texts), convert_to_tensor=True).to(self.device)
        with torch.no_grad(), torch.autocast(torch.device(self.device).type):
            return projected_features(self.model.get_text_features(feats)).float().cpu()

    def identity(self) -> dict:
        return {
            "name": LLM2CLIP_NAME,
            "library": "transformers+llm2vec",
            "library_version": f"transformers {library_version('transformers')}, llm2vec {library_version('llm2vec')}",
            "weights_path": str(self.root),
            "weights_sha256": {d: weights_sha256(weight_files(self.root / d)) for d in LLM2CLIP_SUBDIRS},
            "substitute_for": None,
            "official": True,
        }
