"""Built-in OneIG judges (reasoning, style, diversity) through the OneIG scorer: file formats, identity, "not scored"."""

import hashlib
import json
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from tmpbench.errors import DataFormatError
from tmpbench.metrics.backbones import dreamsim_ensemble, llm2clip
from tmpbench.metrics.backbones.csd import CLIP_MEAN, CLIP_STD
from tmpbench.scoring.base import SampleView
from tmpbench.scoring.engine import score_samples
from tmpbench.scoring.oneig import judges as oj
from tmpbench.scoring.oneig import references
from tmpbench.scoring.oneig.scorer import OneIGJudged
from tmpbench.suites.core import SuiteItem

ENV_VARS = [
    references.SCRIPTS_ENV, references.ANSWERS_ENV, references.STYLE_REFS_ENV, oj.REASONING_DIR_ENV, oj.REASONING_SUBSTITUTE_ENV,
    oj.STYLE_DIR_ENV, oj.DIVERSITY_DIR_ENV, oj.DIVERSITY_SUBSTITUTE_ENV,
    "TMPBENCH_ONEIG_REASONING_JUDGE", "TMPBENCH_ONEIG_STYLE_JUDGE", "TMPBENCH_ONEIG_DIVERSITY_JUDGE",
]
SUITE = types.SimpleNamespace(name="oneig", benchmark="oneig", language="en")
SUITE_ZH = types.SimpleNamespace(name="oneig-zh", benchmark="oneig", language="zh")
TINY_CSD_ARCH = "tmpbench-tiny-csd"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


def _image(seed: int, size: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)


def _item(category: str, id: str, style_class: str = "") -> SuiteItem:
    return SuiteItem(0, id, category, "a prompt", {"category": category, "id": id, "class": style_class}, 0)


def _jpeg_via_file(image: np.ndarray, tmp_path) -> Image.Image:
    """What OneIG's split_mxn_grid hands its encoders: the cell saved as .jpg and opened again."""
    path = tmp_path / "cell.jpg"
    Image.fromarray(image).save(path)
    return Image.open(path).convert("RGB")


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cos(a, b) -> float:
    a, b = torch.as_tensor(a, dtype=torch.float64).reshape(-1), torch.as_tensor(b, dtype=torch.float64).reshape(-1)
    return float(a @ b / (a.norm() * b.norm()))


# ------------------------------------------------------------------------------------------------
# tiny models in the layouts the loaders read
def _tiny_open_clip_dir(path):
    import open_clip
    from safetensors.torch import save_file

    cfg = {
        "model_cfg": {
            "embed_dim": 8,
            "vision_cfg": {"image_size": 32, "layers": 1, "width": 16, "head_width": 8, "patch_size": 16},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
        },
        "preprocess_cfg": {"mean": list(CLIP_MEAN), "std": list(CLIP_STD)},
    }
    path.mkdir()
    (path / "open_clip_config.json").write_text(json.dumps(cfg))
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{path}", load_weights=False)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / "open_clip_model.safetensors"))
    return path


def _tiny_clip_vision_dir(path, image_size=32, patch=16, seed=1):
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    cfg = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=image_size, patch_size=patch, projection_dim=8)
    CLIPVisionModelWithProjection(cfg).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}).save_pretrained(path)
    return path


def _tiny_csd_checkpoint(path):
    import open_clip

    cfg_file = path.parent / f"{TINY_CSD_ARCH}.json"
    cfg_file.write_text(json.dumps({
        "embed_dim": 8, "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 16, "head_width": 8, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
    }))
    open_clip.add_model_config(cfg_file)
    torch.manual_seed(2)
    visual = open_clip.create_model(TINY_CSD_ARCH).visual
    sd = {f"module.backbone.{k}": v for k, v in visual.state_dict().items() if k != "proj"}
    sd["module.last_layer_style"] = torch.randn(16, 6)
    sd["module.last_layer_content"] = torch.randn(16, 6)
    torch.save({"model_state_dict": sd, "epoch": 3}, path)
    return sd


def _style_setup(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    sd = _tiny_csd_checkpoint(models / "checkpoint.pth")
    _tiny_clip_vision_dir(models / "OneIG-StyleEncoder", image_size=224, patch=56)  # OneIG feeds CLIPImageProcessor() (224 px)
    refs = tmp_path / "scripts" / "style"
    refs.mkdir(parents=True)
    g = torch.Generator().manual_seed(3)
    csd = {k: torch.nn.functional.normalize(torch.randn(3, 6, generator=g), dim=-1) for k in ("ghibli", "chinese_ink_painting")}
    se = {k: torch.nn.functional.normalize(torch.randn(3, 8, generator=g), dim=-1).to(torch.bfloat16) for k in csd}
    torch.save(csd, refs / "CSD_embed.pt")
    torch.save(se, refs / "SE_embed.pt")
    return models, refs, sd, csd, se


# ------------------------------------------------------------------------------------------------
# reasoning
def test_reasoning_substitute_end_to_end_matches_hand_cosine(tmp_path, monkeypatch):
    import open_clip

    clip_dir = _tiny_open_clip_dir(tmp_path / "clip")
    (tmp_path / "scripts" / "reasoning").mkdir(parents=True)
    answers = {"000": "Mount Everest is 8,848 meters tall.", "001": "Water boils at 100 degrees Celsius."}
    (tmp_path / "scripts" / "reasoning" / "gt_answer.json").write_text(json.dumps(answers))
    monkeypatch.setenv(oj.REASONING_SUBSTITUTE_ENV, str(clip_dir))
    monkeypatch.setenv(references.SCRIPTS_ENV, str(tmp_path))  # the repository root works too

    scorer = OneIGJudged("oneig_reasoning", SUITE)
    assert scorer.available() == (True, "")
    imgs = [_image(1), _image(2), np.zeros((24, 24, 3), np.uint8)]
    items = [_item("Knowledge_Reasoning", "001"), _item("Knowledge_Reasoning", "001"), _item("Knowledge_Reasoning", "000")]
    samples = [SampleView(it, n, 0, im) for n, (it, im) in enumerate(zip(items, imgs))]
    samples.append(SampleView(_item("Portrait", "000"), 0, 0, _image(3)))
    values, skipped, _ = score_samples({"oneig_reasoning": scorer}, samples)
    assert skipped == {}

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{clip_dir}")
    tok = open_clip.get_tokenizer(f"local-dir:{clip_dir}")
    with torch.no_grad():
        text = model.encode_text(tok([answers["001"]]))[0]
        for v, im in zip(values[:2], imgs[:2]):
            image = model.encode_image(preprocess(_jpeg_via_file(im, tmp_path))[None])[0]
            assert v["oneig_reasoning"] == pytest.approx(_cos(image, text), abs=1e-6)
    assert values[2]["oneig_reasoning"] is None  # all-black cell: OneIG drops it
    assert values[3]["oneig_reasoning"] is None  # not a Knowledge_Reasoning prompt

    ident = scorer.identity()["judge"]
    enc = ident["encoder"]
    assert enc["substitute_for"] == llm2clip.LLM2CLIP_NAME and enc["official"] is False
    assert enc["weights_sha256"] == {"open_clip_model.safetensors": _sha(clip_dir / "open_clip_model.safetensors")}
    assert enc["library"] == "open_clip_torch" and enc["library_version"] != "not installed"
    assert ident["answers_sha256"] == _sha(tmp_path / "scripts" / "reasoning" / "gt_answer.json")


def test_reasoning_without_answers_or_with_missing_ids(tmp_path, monkeypatch):
    clip_dir = _tiny_open_clip_dir(tmp_path / "clip")
    monkeypatch.setenv(oj.REASONING_SUBSTITUTE_ENV, str(clip_dir))
    ok, reason = OneIGJudged("oneig_reasoning", SUITE).available()
    assert not ok and references.SCRIPTS_ENV in reason

    answers = tmp_path / "gt_answer_zh.json"
    answers.write_text(json.dumps({"000": "答案"}), encoding="utf-8")
    monkeypatch.setenv(references.ANSWERS_ENV, str(answers))
    scorer = OneIGJudged("oneig_reasoning", SUITE_ZH)
    _, skipped, _ = score_samples({"oneig_reasoning": scorer}, [SampleView(_item("Knowledge_Reasoning", "007"), 0, 0, _image(4))])
    reason = skipped["oneig_reasoning"]
    assert reason.startswith("not scored: ") and "gt_answer_zh.json" in reason and "'007'" in reason


def test_llm2clip_needs_its_three_folders_and_llm2vec(tmp_path, monkeypatch):
    monkeypatch.setenv(oj.REASONING_DIR_ENV, str(tmp_path / "absent"))
    monkeypatch.setenv(references.ANSWERS_ENV, str(tmp_path / "a.json"))
    (tmp_path / "a.json").write_text('{"000": "x"}')
    ok, reason = OneIGJudged("oneig_reasoning", SUITE).available()
    assert not ok and "does not exist" in reason
    root = tmp_path / "llm2clip"
    (root / llm2clip.LLM2CLIP_SUBDIRS[0]).mkdir(parents=True)
    monkeypatch.setenv(oj.REASONING_DIR_ENV, str(root))
    ok, reason = OneIGJudged("oneig_reasoning", SUITE).available()
    assert not ok and "LLM2CLIP-Openai-L-14-336" in reason
    for d in llm2clip.LLM2CLIP_SUBDIRS:
        (root / d).mkdir(exist_ok=True)
    monkeypatch.setitem(sys.modules, "llm2vec", None)  # as if not installed, whether or not it is
    ok, reason = OneIGJudged("oneig_reasoning", SUITE).available()
    assert not ok and "pip install llm2vec" in reason


# ------------------------------------------------------------------------------------------------
# style
def test_style_judge_reproduces_oneig_formula(tmp_path):
    import open_clip
    from torchvision import transforms
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    models, refs, sd, csd_refs, se_refs = _style_setup(tmp_path)
    judge = oj.load_style_judge(style_dir=models, refs_dir=refs, csd_arch=TINY_CSD_ARCH)
    img = _image(5)
    got = judge.style_score(_item("Anime_Stylization", "049", "Chinese ink painting"), img)

    # by hand, following CSD_CLIP.forward and SEStyleEmbedding.get_style_embedding
    cell = _jpeg_via_file(img, tmp_path)
    visual = open_clip.create_model(TINY_CSD_ARCH).visual
    visual.proj = None
    visual.load_state_dict({k[len("module.backbone."):]: v for k, v in sd.items() if k.startswith("module.backbone.")})
    pre = transforms.Compose([transforms.Resize(32, interpolation=transforms.InterpolationMode.BICUBIC), transforms.CenterCrop(32),
                              transforms.ToTensor(), transforms.Normalize(CLIP_MEAN, CLIP_STD)])
    se_model = CLIPVisionModelWithProjection.from_pretrained(models / "OneIG-StyleEncoder").to(torch.bfloat16).eval()
    with torch.no_grad():
        csd = torch.nn.functional.normalize(visual.eval()(pre(cell)[None]) @ sd["module.last_layer_style"], dim=1)[0]
        px = CLIPImageProcessor()(images=cell, return_tensors="pt").pixel_values.to(torch.bfloat16)
        se = torch.nn.functional.normalize(se_model(px).image_embeds, dim=-1)[0]
    key = "chinese_ink_painting"
    best_csd = max(float((csd_refs[key].double() @ csd.double()).max()), 0.0)
    want = (best_csd + max(float((se_refs[key].double() @ se.double()).max()), 0.0)) / 2
    assert got == pytest.approx(want, abs=1e-6)
    assert 0.0 <= got <= 1.0

    assert judge.style_score(_item("Anime_Stylization", "000", ""), img) is None  # no class: OneIG skips the prompt
    with pytest.raises(DataFormatError, match=r"CSD_embed\.pt: no reference for style 'pixar'"):
        judge.style_score(_item("Anime_Stylization", "078", "Pixar"), img)

    ident = judge.identity()
    assert ident["csd"]["weights_sha256"] == {"checkpoint.pth": _sha(models / "checkpoint.pth")}
    assert ident["style_encoder"]["weights_sha256"] == {"model.safetensors": _sha(models / "OneIG-StyleEncoder" / "model.safetensors")}
    assert ident["references"]["SE_embed.pt"] == _sha(refs / "SE_embed.pt") and ident["substitute_for"] is None


def test_style_through_the_scorer_with_a_judge_in_code(tmp_path):
    models, refs, *_ = _style_setup(tmp_path)
    judge = oj.load_style_judge(style_dir=models, refs_dir=refs, csd_arch=TINY_CSD_ARCH)
    scorer = OneIGJudged("oneig_style", SUITE, judge=judge)
    img = _image(6)
    item = _item("Anime_Stylization", "050", "Ghibli")
    samples = [SampleView(item, 0, 0, img), SampleView(_item("Portrait", "000"), 0, 0, img)]
    values, skipped, _ = score_samples({"oneig_style": scorer}, samples)
    assert skipped == {}
    assert values[0]["oneig_style"] == pytest.approx(judge.style_score(item, img), abs=1e-12)
    assert values[1]["oneig_style"] is None


def test_style_csd_checkpoint_must_match_the_vision_tower(tmp_path):
    models, refs, sd, *_ = _style_setup(tmp_path)
    bad = dict(sd)
    bad["module.backbone.not_a_layer.weight"] = torch.zeros(1)
    torch.save({"model_state_dict": bad}, models / "checkpoint.pth")
    with pytest.raises(DataFormatError, match=r"checkpoint\.pth: backbone keys not in a .*not_a_layer"):
        oj.load_style_judge(style_dir=models, refs_dir=refs, csd_arch=TINY_CSD_ARCH)
    torch.save({"model_state_dict": {k: v for k, v in sd.items() if "last_layer_style" not in k}}, models / "checkpoint.pth")
    with pytest.raises(DataFormatError, match=r"checkpoint\.pth: key 'last_layer_style' missing"):
        oj.load_style_judge(style_dir=models, refs_dir=refs, csd_arch=TINY_CSD_ARCH)


def test_style_missing_dir_or_bad_references_is_not_scored(tmp_path, monkeypatch):
    ok, reason = OneIGJudged("oneig_style", SUITE).available()
    assert not ok and oj.STYLE_DIR_ENV in reason

    monkeypatch.setenv(oj.STYLE_DIR_ENV, str(tmp_path / "nope"))
    scorer = OneIGJudged("oneig_style", SUITE)
    _, skipped, _ = score_samples({"oneig_style": scorer}, [SampleView(_item("Anime_Stylization", "049", "fauvism"), 0, 0, _image(7))])
    assert skipped["oneig_style"].startswith("not scored: style model folder") and "does not exist" in skipped["oneig_style"]

    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv(oj.STYLE_DIR_ENV, str(models))
    monkeypatch.setenv(references.STYLE_REFS_ENV, str(tmp_path))
    torch.save({"ghibli": torch.zeros(3, 4), "lego": [1, 2, 3]}, tmp_path / "CSD_embed.pt")
    ok, reason = OneIGJudged("oneig_style", SUITE).available()
    assert not ok and "CSD_embed.pt: key 'lego'" in reason


def test_style_reference_file_formats(tmp_path):
    good = tmp_path / "SE_embed.pt"
    torch.save({"ghibli": torch.ones(3, 4, dtype=torch.bfloat16), "lego": torch.ones(4)}, good)
    refs = references.load_style_references(good)
    assert refs["ghibli"].dtype == torch.float32 and refs["lego"].shape == (1, 4)
    torch.save({"ghibli": torch.ones(3, 4), "lego": torch.ones(3, 5)}, tmp_path / "x.pt")
    with pytest.raises(DataFormatError, match=r"x\.pt: key 'lego': embedding size 5 differs"):
        references.load_style_references(tmp_path / "x.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataFormatError, match=r"junk\.pt: cannot be read"):
        references.load_style_references(tmp_path / "junk.pt")


# ------------------------------------------------------------------------------------------------
# reasoning answers file
def test_answer_file_formats(tmp_path):
    bad = tmp_path / "gt_answer.json"
    bad.write_text('{"000": "ok", "001": 5}')
    with pytest.raises(DataFormatError, match=r"gt_answer\.json: key '001': expected the answer text"):
        references.load_reasoning_answers(bad)
    bad.write_text('{"000": "ok",')
    with pytest.raises(DataFormatError, match=r"gt_answer\.json: not valid JSON"):
        references.load_reasoning_answers(bad)
    bad.write_text('["a", "b"]')
    with pytest.raises(DataFormatError, match=r"gt_answer\.json: expected a non-empty JSON object"):
        references.load_reasoning_answers(bad)


# ------------------------------------------------------------------------------------------------
# diversity
def test_diversity_substitute_matches_hand_mean_pairwise_distance(tmp_path, monkeypatch):
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    clip_dir = _tiny_clip_vision_dir(tmp_path / "vision")
    monkeypatch.setenv(oj.DIVERSITY_SUBSTITUTE_ENV, str(clip_dir))
    scorer = OneIGJudged("oneig_diversity", SUITE)
    assert scorer.available() == (True, "")
    cells = [_image(10), _image(11), np.zeros((24, 24, 3), np.uint8), _image(12)]
    item = _item("General_Object", "000")
    samples = [SampleView(item, n, 0, c, cells=cells) for n, c in enumerate(cells)]
    values, skipped, _ = score_samples({"oneig_diversity": scorer}, samples)
    assert skipped == {}

    model = CLIPVisionModelWithProjection.from_pretrained(clip_dir).eval()
    proc = CLIPImageProcessor.from_pretrained(clip_dir)
    kept = [_jpeg_via_file(c, tmp_path) for c in (cells[0], cells[1], cells[3])]  # the black cell is dropped
    with torch.no_grad():
        emb = model(pixel_values=proc(images=kept, return_tensors="pt").pixel_values).image_embeds
    want = np.mean([1 - _cos(emb[i], emb[j]) for i in range(3) for j in range(i + 1, 3)])
    assert values[0]["oneig_diversity"] == pytest.approx(want, abs=1e-6)
    assert all(v["oneig_diversity"] is None for v in values[1:])  # one value per prompt, on cell 0

    enc = scorer.identity()["judge"]["encoder"]
    assert enc["substitute_for"] == dreamsim_ensemble.DREAMSIM_NAME and enc["official"] is False
    assert enc["weights_sha256"] == {"model.safetensors": _sha(clip_dir / "model.safetensors")}

    lone = [_image(13)] + [np.zeros((24, 24, 3), np.uint8)] * 3
    assert scorer._judge.diversity_score(lone) is None  # fewer than two cells: OneIG skips the prompt


def test_dreamsim_needs_its_cache_files_and_package(tmp_path, monkeypatch):
    monkeypatch.setenv(oj.DIVERSITY_DIR_ENV, str(tmp_path / "none"))
    ok, reason = OneIGJudged("oneig_diversity", SUITE).available()
    assert not ok and "does not exist" in reason
    monkeypatch.setenv(oj.DIVERSITY_DIR_ENV, str(tmp_path))
    ok, reason = OneIGJudged("oneig_diversity", SUITE).available()
    assert not ok and "lacks dino_vitb16_pretrain.pth" in reason and "ensemble_lora" in reason
    for f in dreamsim_ensemble.DREAMSIM_FILES:
        (tmp_path / f).mkdir() if f.endswith("lora") else (tmp_path / f).write_bytes(b"")
    monkeypatch.setitem(sys.modules, "dreamsim", None)  # as if not installed, whether or not it is
    ok, reason = OneIGJudged("oneig_diversity", SUITE).available()
    assert not ok and "pip install dreamsim" in reason


def test_plugin_env_still_overrides_builtin(tmp_path, monkeypatch):
    (tmp_path / "my_oneig_plugin.py").write_text(
        "import torch\n"
        "class J:\n"
        "    def embed_images(self, images):\n"
        "        return torch.tensor([[1.0, 0.0], [0.0, 1.0]])[: len(images)]\n"
        "def make(device):\n"
        "    return J()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("TMPBENCH_ONEIG_DIVERSITY_JUDGE", "my_oneig_plugin:make")
    monkeypatch.setenv(oj.DIVERSITY_DIR_ENV, str(tmp_path / "ignored"))
    scorer = OneIGJudged("oneig_diversity", SUITE)
    assert scorer.available() == (True, "")
    cells = [_image(1), _image(2)]
    assert scorer.score([SampleView(_item("Portrait", "000"), 0, 0, cells[0], cells=cells)]) == [{"oneig_diversity": 1.0}]
