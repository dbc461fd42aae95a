"""CLIP metrics: the maths, the open_clip loading path (a tiny open_clip model saved to disk), offline errors."""

import json

import numpy as np
import pytest
import torch

from tmpbench.errors import OfflineError, TmpbenchError
from tmpbench.metrics.clip_score import (
    CLIPImageSimilarity,
    CLIPScore,
    CLIPTextSimilarity,
    DirectionalCLIPSimilarity,
    clip_score,
    cosine_rows,
    directional_similarity,
    load_open_clip,
)

TINY = "tmpbench-tiny-clip"


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A 1-layer open_clip model (random weights) registered as TINY and saved as a checkpoint file."""
    import open_clip

    d = tmp_path_factory.mktemp("tinyclip")
    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    (d / f"{TINY}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(d / f"{TINY}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(TINY)
    torch.save(model.state_dict(), d / "tiny.pt")
    return model.eval(), d / "tiny.pt"


def test_pure_maths():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 0.0], [-1.0, -1.0]])
    torch.testing.assert_close(cosine_rows(a, b), torch.tensor([1.0, 0.0, -1.0]))
    torch.testing.assert_close(clip_score(a, b), torch.tensor([100.0, 0.0, 0.0]))  # negative cosine clamps to 0
    src_i, edit_i = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    src_t, tgt_t = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    torch.testing.assert_close(directional_similarity(src_i, edit_i, src_t, tgt_t), torch.tensor([1.0]))
    torch.testing.assert_close(directional_similarity(src_i, edit_i, tgt_t, src_t), torch.tensor([-1.0]))
    with pytest.raises(ValueError, match="embedding shapes differ"):
        cosine_rows(a, b[:2])


def test_loads_the_checkpoint_file(tiny_clip):
    model, path = tiny_clip
    bundle = load_open_clip(TINY, path)
    for (k, v), (_, w) in zip(model.state_dict().items(), bundle.model.state_dict().items()):
        assert torch.equal(v, w), k
    assert bundle.image_size == 32 and len(bundle.weights_sha256) == 64


def test_metrics_accumulate_and_match_embeddings(tiny_clip):
    _, path = tiny_clip
    bundle = load_open_clip(TINY, path)
    rng = np.random.default_rng(0)
    src = list(rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8))
    edit = list(rng.integers(0, 256, (4, 40, 48, 3), dtype=np.uint8))  # non-square: centre-cropped
    src_caps = ["a red circle", "a blue square", "two triangles", "a green square"]
    tgt_caps = ["a blue circle", "a red square", "three triangles", "a green circle"]
    ei, si = bundle.embed_images(edit), bundle.embed_images(src)
    es, et = bundle.embed_texts(src_caps), bundle.embed_texts(tgt_caps)

    cs = CLIPScore(TINY, path)
    cs.update(edit[:2], tgt_caps[:2])
    cs.update(edit[2:], tgt_caps[2:])
    assert float(cs.compute()) == pytest.approx(float(clip_score(ei, et).mean()), rel=1e-5)

    ci = CLIPImageSimilarity(TINY, path)
    ci.update(edit, src)
    assert float(ci.compute()) == pytest.approx(float(cosine_rows(ei, si).mean()), rel=1e-5)
    ct = CLIPTextSimilarity(TINY, path)
    ct.update(edit, tgt_caps)
    assert float(ct.compute()) == pytest.approx(float(cosine_rows(ei, et).mean()), rel=1e-5)
    cd = DirectionalCLIPSimilarity(TINY, path)
    cd.update(src, edit, src_caps, tgt_caps)
    assert float(cd.compute()) == pytest.approx(float(directional_similarity(si, ei, es, et).mean()), rel=1e-5)

    ident = cd.identity()
    assert ident["name"] == "clip_dir" and ident["mode"] == TINY and ident["weights_sha256"] == bundle.weights_sha256
    assert cs.higher_is_better and ci.available() == (True, "")


def test_input_errors(tiny_clip):
    _, path = tiny_clip
    cs = CLIPScore(TINY, path)
    with pytest.raises(TmpbenchError, match=r"inputs differ in length \{'images': 2, 'captions': 1\}"):
        cs.update(np.zeros((2, 32, 32, 3), np.uint8), ["one caption"])
    with pytest.raises(TmpbenchError, match="captions must be a list of strings"):
        cs.update(np.zeros((1, 32, 32, 3), np.uint8), "not a list")
    with pytest.raises(TmpbenchError, match="no samples were scored"):
        CLIPScore(TINY, path).compute()
    ok, reason = CLIPScore(TINY).available()
    assert not ok and "is not tmpbench's default: pass its checkpoint" in reason
    with pytest.raises(TmpbenchError, match="is not tmpbench's default: pass its checkpoint"):
        load_open_clip(TINY)


def test_offline_without_clip_weights(tmp_path, monkeypatch, no_weight_env):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for cls in (CLIPScore, CLIPImageSimilarity, CLIPTextSimilarity, DirectionalCLIPSimilarity):
        metric = cls()
        ok, reason = metric.available()
        assert not ok
        assert "\n" not in reason
        assert "models--timm--vit_base_patch32_clip_224.openai" in reason and "TMPBENCH_CLIP_WEIGHTS" in reason
        assert metric.identity()["weights_sha256"] is None
    with pytest.raises(OfflineError, match="open_clip ViT-B-32 openai weights for feature mode 'clip' not found offline"):
        CLIPScore().update(np.zeros((1, 32, 32, 3), np.uint8), ["a red circle"])


@pytest.mark.weights
def test_real_clip_prefers_the_matching_caption():
    from tmpbench.shapes.world import Scene, ShapeObject, render

    metric = CLIPScore()
    ok, reason = metric.available()
    if not ok:
        pytest.skip(reason)
    img = render(Scene((ShapeObject("circle", "red", 0, 0),)), 224)
    good, bad = CLIPScore(), CLIPScore()
    good.update([img], ["a photo of a red circle"])
    bad.update([img], ["a photo of a dog"])
    assert float(good.compute()) > float(bad.compute())
