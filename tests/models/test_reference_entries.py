"""The tiny-dit / tiny-moe registry entries: one loader and one meta builder, traits read from the entry."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tmpbench.catalog import MODELS
from tmpbench.errors import TmpbenchError
from tmpbench.models.counting import build_meta, count_params
from tmpbench.models.reference import tiny_zimage as tz
from tmpbench.models.reference.entries import TINY_DIT_ENTRY, TINY_MOE_ENTRY, load_reference
from tmpbench.models.reference.tiny_moe import TinyMoETransformer

TINY = dict(dim=32, n_layers=2, n_heads=2, text_hidden=16, text_layers=2)
MOE = {"num_experts": 4, "moe_topk": 2, "moe_intermediate_size": 8, "num_shared_expert": 1}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("refs")
    for kind, cfg in (("dense", tz.TinyZImageConfig(**TINY)), ("moe", tz.TinyZImageConfig(**TINY, moe=MOE))):
        tz.save_pipeline(tz.make_pipeline(tz.build_components(cfg)), root / kind, cfg)
    return root


def test_registry_serves_the_reference_entries():
    assert MODELS.get("tiny-dit") is TINY_DIT_ENTRY and MODELS.get("tiny-moe") is TINY_MOE_ENTRY
    assert (TINY_DIT_ENTRY.path_env, TINY_MOE_ENTRY.path_env) == ("TMPBENCH_TINY_DIT_PATH", "TMPBENCH_TINY_MOE_PATH")
    assert (TINY_DIT_ENTRY.transfer_partner, TINY_MOE_ENTRY.transfer_partner) == ("tiny-moe", "tiny-dit")


def test_references_batch_many_images_per_call_and_entries_reject_a_batch_below_one():
    assert [MODELS.get(n).default_batch_size for n in ("tiny-dit", "tiny-moe", "tiny-hy3")] == [64, 64, 64]
    assert MODELS.get("zimage").default_batch_size == 8  # 1024 px images: a batch must fit in accelerator memory
    assert TINY_DIT_ENTRY.as_dict()["default_batch_size"] == 64
    with pytest.raises(TmpbenchError, match="model 'tiny-dit': default_batch_size must be at least 1, got 0"):
        dataclasses.replace(TINY_DIT_ENTRY, default_batch_size=0)


@pytest.mark.parametrize("entry", [TINY_DIT_ENTRY, TINY_MOE_ENTRY], ids=lambda e: e.name)
def test_meta_builder_matches_nominal_params(entry):
    assert count_params(build_meta(entry.name)) == entry.nominal_params


def test_loader_checks_the_folder_against_the_entry_architecture(folders):
    with pytest.raises(TmpbenchError, match=r"holds a dense transformer, which does not match model 'tiny-moe'"):
        load_reference(TINY_MOE_ENTRY, str(folders / "dense"))
    with pytest.raises(TmpbenchError, match=r"holds a MoE transformer, which does not match model 'tiny-dit'"):
        load_reference(TINY_DIT_ENTRY, str(folders / "moe"))
    # MoE or dense is the entry's architecture, not its name
    renamed = dataclasses.replace(TINY_MOE_ENTRY, name="my-experts")
    gen = load_reference(renamed, str(folders / "moe"))
    assert isinstance(gen.denoiser, TinyMoETransformer) and gen.name == gen.model == "my-experts"


def test_reference_generator_round_trips_through_save(folders, tmp_path):
    pipe, cfg = tz.load_pipeline(folders / "dense")
    gen = tz.reference_generator(pipe, cfg, name="tiny-dit")
    assert gen.edit_fn is tz.edit_in_sequence and gen.max_sequence_length == cfg.max_sequence_length
    gen.save(tmp_path / "again")
    again = load_reference(TINY_DIT_ENTRY, str(tmp_path / "again"))
    a = gen.generate(["a red circle"], seeds=[0], steps=2, guidance=1.0, size=32)[0]
    b = again.generate(["a red circle"], seeds=[0], steps=2, guidance=1.0, size=32)[0]
    diff = np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max()
    assert a.size == b.size == (32, 32) and diff <= 2  # weights saved as float16
