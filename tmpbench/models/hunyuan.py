"""HunyuanImage-3.0 adapter (80B MoE, transformers ``trust_remote_code``) and its offline stand-in.

* Real model: HunyuanImage-3.0 / -Instruct from a LOCAL directory (``--model-path DIR`` or
  ``TMPBENCH_HUNYUAN_PATH``), loaded with ``AutoModelForCausalLM.from_pretrained(DIR,
  trust_remote_code=True, moe_impl="eager", ...)`` and driven through its ``generate_image`` API
  (T2I; TI2I with ``image=`` on -Instruct). The upstream README says the hub id cannot be loaded
  directly (the dot in ``HunyuanImage-3.0`` breaks the remote-code import) and that the directory
  name must not contain dots, so this adapter never downloads and checks the name up front.
* Stand-in: transformers' own ``HunYuanMoEV1ForCausalLM`` (Hunyuan-A13B, the LLM HunyuanImage-3.0
  is built on: same router ``gate.wg``, ``moe_topk``, ``shared_mlp``). A directory whose
  ``config.json`` names that architecture loads through the same :class:`HunyuanImage3Generator`,
  so pruning code runs on a tiny random-init instance on a CPU. It is a text model: asking it for
  images raises a one-line error.
* ``build_hunyuanimage3_meta``: the full-size backbone on the meta device (no weights allocated),
  built from transformers' HunYuanMoEV1 classes with HunyuanImage-3.0's config values.

Config values (``HUNYUANIMAGE3_CONFIG``) and where they come from:

* ``hunyuan_image_3/configuration_hunyuan.py`` and ``hunyuan.py`` (github.com/Tencent-Hunyuan/
  HunyuanImage-3.0, commit 1d011c8): class ``HunyuanImage3Config``; ``HunyuanMoE`` builds
  ``gate = HunyuanTopKGate`` (``wg``: ``Linear(hidden, num_experts, bias=False)``), ``experts`` =
  ModuleList of ``HunyuanMLP`` (``gate_and_up_proj``: ``Linear(hidden, 2 * moe_intermediate_size)``,
  ``down_proj``), ``shared_mlp`` of width ``moe_intermediate_size * num_shared_expert``; attention
  is a fused ``qkv_proj`` + ``o_proj`` with per-head RMS ``query_layernorm``/``key_layernorm``;
  ``HunyuanImage3ForCausalMM`` adds ``wte``, an untied ``lm_head``, a SigLIP2 ViT + aligner, a VAE,
  UNet patch embed / final layer and three timestep embedders.
* The released ``config.json`` (huggingface.co/tencent/HunyuanImage-3.0; values as quoted by
  independent ports: ComfyUI's hunyuan_image_3 tests, an inference-engine model registry): vocab
  133120, hidden 4096, 32 layers, 32 heads, 8 KV heads, head dim 128, ``moe_intermediate_size``
  3072 per layer, 64 experts, ``moe_topk`` 8 per layer, ``num_shared_expert`` 1 per layer,
  ``use_mixed_mlp_moe`` true, ``use_qk_norm`` true, ``moe_layer_num_skipped`` 0, silu.
* README: "64 experts and a total of 80 billion parameters, with 13 billion activated per token".
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tmpbench.errors import OfflineError, TmpbenchError
from tmpbench.models.base import Generator, ModelEntry, check_batch, check_edit_batch
from tmpbench.models.spec import write_marker
from tmpbench.models.weights import loading_weights, path_hint, quiet_hub_logs, weights_source, weights_unavailable

if TYPE_CHECKING:
    import torch
    from PIL import Image

HUNYUANIMAGE3_ID = "tencent/HunyuanImage-3.0"
HUNYUANIMAGE3_INSTRUCT_ID = "tencent/HunyuanImage-3.0-Instruct"
PATH_ENV = "TMPBENCH_HUNYUAN_PATH"
STANDIN_ARCH = "HunYuanMoEV1ForCausalLM"

# HunyuanImage-3.0's backbone as HunYuanMoEV1Config fields (sources in the module docstring).
# transformers' HunYuanMoEV1 gives routed experts AND the shared expert `intermediate_size`, which
# matches HunyuanImage-3.0 where both are moe_intermediate_size (3072) x num_shared_expert (1).
HUNYUANIMAGE3_CONFIG: dict[str, Any] = {
    "vocab_size": 133120,
    "hidden_size": 4096,
    "intermediate_size": 3072,  # = moe_intermediate_size; every layer is MoE (moe_layer_num_skipped 0)
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "num_experts": 64,
    "moe_topk": 8,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,  # the checkpoint index holds a separate lm_head.weight
    "attention_bias": False,
    "max_position_embeddings": 22800,
}


# the image-side modules HunyuanImage-3.0 loads beside its backbone (config.json "vae" and "vit"):
# the VAE is AutoencoderKLConv3D with block_out_channels [128, 256, 512, 1024, 1024], 32 latent
# channels, 16x spatial / 4x temporal compression, layers_per_block 2, match-channel up/down
# sampling: the layout (and these defaults) of diffusers' AutoencoderKLHunyuanVideo15; the vision
# encoder is SigLIP2 so400m at patch 16 (hidden 1152, 27 layers, 16 heads, MLP 4304)
HUNYUANIMAGE3_VIT_CONFIG: dict[str, Any] = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "patch_size": 16,
}


def hunyuanimage3_meta_components(entry: ModelEntry | None = None) -> dict[str, Any]:
    """HunyuanImage-3.0's VAE and vision encoder on the meta device. Its text encoder is the
    backbone itself (the token embedding is part of the denoiser), so there is none to add."""
    import torch
    from diffusers import AutoencoderKLHunyuanVideo15
    from transformers import Siglip2VisionConfig, Siglip2VisionModel

    with torch.device("meta"):
        return {
            "vae": AutoencoderKLHunyuanVideo15(),
            "vision_encoder": Siglip2VisionModel(Siglip2VisionConfig(**HUNYUANIMAGE3_VIT_CONFIG)),
        }


def hunyuanimage3_backbone_config(**overrides: Any):
    """``HunYuanMoEV1Config`` with HunyuanImage-3.0's backbone values (``overrides`` replace them)."""
    from transformers import HunYuanMoEV1Config

    return HunYuanMoEV1Config(**{**HUNYUANIMAGE3_CONFIG, **overrides})


def build_hunyuanimage3_meta(entry: ModelEntry | None = None) -> torch.nn.Module:
    """The full-size HunyuanImage-3.0 backbone on the meta device: 80.96B parameters, none allocated.

    A ``HunYuanMoEV1ForCausalLM`` (token embedding, 32 MoE decoder layers with 64 routed experts +
    1 shared expert each, final norm, untied LM head): the part pruners see and >99% of the model.
    Not built: the image-only extras of ``HunyuanImage3ForCausalMM`` (SigLIP2 ViT ~0.4B, VAE, UNet
    patch embed / final layer, timestep embedders), roughly 1B more in total; with or without
    them the count is within 3% of the published 80B.
    """
    import torch
    from transformers import HunYuanMoEV1ForCausalLM

    overrides = dict(entry.extra.get("config_overrides", {})) if entry is not None else {}
    config = hunyuanimage3_backbone_config(**overrides)
    with torch.device("meta"):
        return HunYuanMoEV1ForCausalLM(config)


def build_hunyuan_moe_standin(
    seed: int = 0,
    vocab_size: int = 256,
    hidden_size: int = 32,
    intermediate_size: int = 16,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    num_experts: int = 4,
    moe_topk: int = 2,
) -> torch.nn.Module:
    """A tiny random-init ``HunYuanMoEV1ForCausalLM`` (seeded): the offline stand-in for tests."""
    import torch
    from transformers import HunYuanMoEV1Config, HunYuanMoEV1ForCausalLM

    from tmpbench.models.moe import check_top_k

    check_top_k(moe_topk, num_experts, where="the HunYuanMoEV1 stand-in")
    config = HunYuanMoEV1Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        head_dim=hidden_size // num_attention_heads,
        num_experts=num_experts,
        moe_topk=moe_topk,
        max_position_embeddings=128,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return HunYuanMoEV1ForCausalLM(config).eval()


def _first_image(result: Any) -> Image.Image:
    """``generate_image`` returns an image (base model) or ``(cot_text, [images])`` (-Instruct)."""
    from PIL import Image as PILImage

    if isinstance(result, tuple) and len(result) == 2 and not isinstance(result[0], PILImage.Image):
        result = result[1]
    if isinstance(result, (list, tuple)):
        result = result[0]
    if not isinstance(result, PILImage.Image):
        raise TmpbenchError(f"generate_image returned {type(result).__name__}, expected a PIL image")
    return result


class HunyuanImage3Generator(Generator):
    """A :class:`Generator` over HunyuanImage-3.0 (``generate_image``) or the HunYuanMoEV1 stand-in.

    ``bot_task`` is passed to ``generate_image``: ``"image"`` generates directly from the prompt
    (no chain-of-thought or prompt rewriting), which keeps benchmark runs comparable across pruned
    variants. The denoiser pruners see is the whole model (its MoE blocks via
    :func:`tmpbench.models.moe.find_moe_blocks`).
    """

    family = "hunyuanimage3"

    def __init__(
        self,
        model: Any,
        name: str = "hunyuanimage3",
        source_dir: str | None = None,
        supports_edit: bool = False,
        bot_task: str = "image",
    ) -> None:
        self.model = model
        self.name = name
        self.source_dir = source_dir
        self.bot_task = bot_task
        self.is_standin = not hasattr(model, "generate_image")
        self.supports_edit = supports_edit and not self.is_standin

    @property
    def denoiser(self) -> torch.nn.Module:
        return self.model

    def offload(self, strategy: str, device: str) -> None:
        """``"expert"`` only (``tmpbench fit``'s answer for HunyuanImage-3.0 at 20B on a 24 GB card): every
        weight but the routed experts on ``device``, the experts streamed per call
        (:func:`tmpbench.models.offload.expert_offload`); the model must have been loaded on the CPU."""
        if strategy == "expert":
            from tmpbench.models.offload import expert_offload

            expert_offload(self.model, device)
            return
        super().offload(strategy, device)

    def _require_image_model(self) -> None:
        if self.is_standin:
            raise TmpbenchError(
                f"{self.name!r} is a {type(self.model).__name__} stand-in (text-only MoE) and cannot make "
                f"images; pass --model-path to a HunyuanImage-3.0 checkpoint directory or set {PATH_ENV}"
            )

    def _call(self, prompt: str, seed: int, steps: int, guidance: float, size: int, **extra: Any) -> Image.Image:
        result = self.model.generate_image(
            prompt=prompt,
            seed=int(seed),
            image_size=f"{size}x{size}",
            bot_task=self.bot_task,
            diff_infer_steps=steps,
            diff_guidance_scale=guidance,
            verbose=0,
            **extra,
        )
        image = _first_image(result).convert("RGB")
        # the model snaps sizes to its resolution buckets; the interface promises size x size
        return image if image.size == (size, size) else image.resize((size, size))

    def generate(
        self, prompts: list[str], seeds: list[int], steps: int, guidance: float, size: int
    ) -> list[Image.Image]:
        check_batch(prompts, seeds, steps, size, multiple=16)
        self._require_image_model()
        return [self._call(p, s, steps, guidance, size) for p, s in zip(prompts, seeds)]

    def edit(
        self, images: list[Image.Image], instructions: list[str], seeds: list[int], steps: int, guidance: float, size: int
    ) -> list[Image.Image]:
        check_edit_batch(images, instructions, seeds, steps, size, multiple=16)
        self._require_image_model()
        if not self.supports_edit:
            raise TmpbenchError(
                f"model {self.name!r} does not edit images; use hunyuanimage3-instruct (TI2I) or a T2I suite"
            )
        out = []
        with tempfile.TemporaryDirectory(prefix="tmpbench-hy3-") as tmp:
            for i, (image, instruction, seed) in enumerate(zip(images, instructions, seeds)):
                source = Path(tmp) / f"source_{i}.png"  # generate_image takes image paths
                image.convert("RGB").resize((size, size)).save(source)
                out.append(
                    self._call(instruction, seed, steps, guidance, size, image=str(source), infer_align_image_size=True)
                )
        return out

    def save(self, path: str | Path) -> None:
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory)
        if self.source_dir is not None:  # tokenizer, generation config and remote code are not weights
            for item in Path(self.source_dir).iterdir():
                if item.is_file() and not item.name.endswith((".safetensors", ".bin", ".index.json")):
                    if not (directory / item.name).exists():
                        shutil.copy2(item, directory / item.name)
        write_marker(directory, model=self.name)


def _read_architectures(directory: Path, entry: ModelEntry) -> list[str]:
    config = directory / "config.json"
    if not config.is_file():
        raise OfflineError(f"{entry.name} directory {str(directory)!r} has no config.json; {path_hint(entry)}")
    try:
        return list(json.loads(config.read_text()).get("architectures") or [])
    except json.JSONDecodeError as exc:
        raise TmpbenchError(f"{config} is not valid JSON ({exc.msg} at line {exc.lineno}); re-download it") from None


def load_hunyuanimage3(entry: ModelEntry, path: str | None, device: str = "cpu") -> HunyuanImage3Generator:
    """Loader hook for ``hunyuanimage3`` / ``hunyuanimage3-instruct``: a local directory only.

    A directory holding a ``HunYuanMoEV1ForCausalLM`` config loads as the stand-in.
    """
    source, local = weights_source(entry, path)
    if not local:
        raise weights_unavailable(entry, "HunyuanImage-3.0 loads only from a local directory, not its hub id")
    directory = Path(source)
    architectures = _read_architectures(directory, entry)
    if STANDIN_ARCH in architectures:
        from transformers import HunYuanMoEV1ForCausalLM

        with quiet_hub_logs():
            model = HunYuanMoEV1ForCausalLM.from_pretrained(directory, local_files_only=True)
        return HunyuanImage3Generator(model.to(device).eval(), name=entry.name, source_dir=str(directory))
    if "." in directory.name:
        raise TmpbenchError(
            f"HunyuanImage-3.0 directory name {directory.name!r} contains a dot, which breaks transformers' "
            f"remote-code import; rename it (e.g. HunyuanImage-3) and pass the new path"
        )
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = dict(
        trust_remote_code=True,
        local_files_only=True,
        attn_implementation=entry.extra.get("attn_implementation", "sdpa"),
        torch_dtype="auto",
        moe_impl=entry.extra.get("moe_impl", "eager"),
    )
    if device in ("auto", "cuda"):
        kwargs["device_map"] = "auto"  # 80B in bf16 needs several GPUs
    with loading_weights(entry, local=True):  # always a local folder (trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(str(directory), **kwargs)
        model.load_tokenizer(str(directory))
    if "device_map" not in kwargs:
        model = model.to(torch.device(device))
    return HunyuanImage3Generator(
        model.eval(),
        name=entry.name,
        source_dir=str(directory),
        supports_edit=entry.supports_edit,
        bot_task=entry.extra.get("bot_task", "image"),
    )


HUNYUANIMAGE3_ENTRY = ModelEntry(
    name="hunyuanimage3",
    family="hunyuanimage3",
    source=HUNYUANIMAGE3_ID,
    loader="tmpbench.models.hunyuan:load_hunyuanimage3",
    meta_builder="tmpbench.models.hunyuan:build_hunyuanimage3_meta",
    meta_components="tmpbench.models.hunyuan:hunyuanimage3_meta_components",
    nominal_params=80_000_000_000,  # README: "a total of 80 billion parameters"
    default_steps=50,  # run_image_gen.py --diff-infer-steps default
    default_guidance=5.0,  # not verified: upstream's default is the checkpoint's generation_config
    default_size=1024,
    path_env=PATH_ENV,
    supports_edit=False,
    batched_calls=False,  # generate() runs generate_image once per prompt
    description="HunyuanImage-3.0 80B MoE (64 experts, top-8, 1 shared), transformers trust_remote_code; T2I",
)

# -Instruct is the same backbone and loader with TI2I editing
HUNYUANIMAGE3_INSTRUCT_ENTRY = dataclasses.replace(
    HUNYUANIMAGE3_ENTRY,
    name="hunyuanimage3-instruct",
    source=HUNYUANIMAGE3_INSTRUCT_ID,
    supports_edit=True,
    description="HunyuanImage-3.0-Instruct 80B MoE; T2I and TI2I (generate_image(image=...))",
)
