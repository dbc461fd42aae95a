"""Property tests: physical surgery == a masked reference, and apply_plan == in-place surgery.

The masked reference keeps every weight and zeroes the pruned units' contributions in the forward
pass (head outputs before to_out, FFN channels before the down projection, router logits of
removed experts set to -inf, dropped blocks hooked to return their input). Hypothesis draws tiny
random configs and random cuts; each example stays in the millisecond range.
"""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import ZImageTransformer2DModel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tmpbench.models.reference.tiny_moe import TinyMoEBlock, TinyMoETransformer
from tmpbench.pruning import (
    Decision,
    Plan,
    apply_plan,
    build_unit_tree,
    drop_block,
    fit_linear_map,
    merge_experts,
    model_identity,
    prune_expert_channels,
    prune_experts,
    prune_ffn_channels,
    prune_heads,
    replace_with_linear,
)

torch.set_num_threads(1)
ATOL = 1e-5
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEAD_AXES = {6: [2, 2, 2], 8: [2, 2, 4]}


# ---------------------------------------------------------------------------------------------
# builders
# ---------------------------------------------------------------------------------------------
def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial weights everywhere (pad tokens and norms included), so no cut is invisible."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    # float64 keeps summation-order noise (a pruned matmul adds fewer terms) far below the tolerance
    return model.double().eval()


def _zimage(n_heads: int, head_dim: int, n_layers: int, n_refiner: int, seed: int, moe: dict | None = None):
    kwargs = dict(
        all_patch_size=(2,), all_f_patch_size=(1,), in_channels=4, dim=n_heads * head_dim, n_layers=n_layers,
        n_refiner_layers=n_refiner, n_heads=n_heads, n_kv_heads=n_heads, cap_feat_dim=8,
        axes_dims=HEAD_AXES[head_dim], axes_lens=[64, 16, 16],
    )
    model = TinyMoETransformer(**kwargs, **moe) if moe else ZImageTransformer2DModel(**kwargs)
    return _randomise(model, seed)


def _inputs(seed: int, side: int, cap_len: int):
    g = torch.Generator().manual_seed(seed + 1)
    return dict(
        x=[torch.randn(4, 1, side, side, generator=g, dtype=torch.float64)],
        t=torch.rand(1, generator=g, dtype=torch.float64),
        cap_feats=[torch.randn(cap_len, 8, generator=g, dtype=torch.float64)],
    )


def _run(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack(model(**inputs, return_dict=False)[0])


def _subset(draw, n: int, min_size: int = 1) -> list[int]:
    size = draw(st.integers(min_size, n))
    return sorted(draw(st.permutations(range(n)))[:size])


# ---------------------------------------------------------------------------------------------
# masked reference: hooks that zero the pruned units' contributions, weights untouched
# ---------------------------------------------------------------------------------------------
def _mask_input(module: torch.nn.Module, mask: torch.Tensor) -> None:
    module.register_forward_pre_hook(lambda mod, args: (args[0] * mask.to(args[0].dtype),) + tuple(args[1:]))


def _head_mask(heads: int, head_dim: int, keep: list[int]) -> torch.Tensor:
    mask = torch.zeros(heads, head_dim)
    mask[keep] = 1.0
    return mask.flatten()


def _channel_mask(n: int, keep: list[int]) -> torch.Tensor:
    mask = torch.zeros(n)
    mask[keep] = 1.0
    return mask


def _mask_router(moe: torch.nn.Module, keep: list[int]) -> None:
    blocked = torch.full((moe.gate.wg.out_features,), float("-inf"))
    blocked[keep] = 0.0
    moe.gate.wg.register_forward_hook(lambda mod, args, out: out + blocked.to(out.dtype))


def _masked_reference(model: torch.nn.Module, plan: Plan, linear_maps: dict) -> torch.nn.Module:
    ref = copy.deepcopy(model)
    for d in plan.decisions:
        module = ref.get_submodule(d.path)
        if d.policy == "prune_heads":
            heads, head_dim = module.heads, module.to_q.out_features // module.heads
            _mask_input(module.to_out[0], _head_mask(heads, head_dim, d.keep))
        elif d.policy == "prune_channels" and isinstance(module, torch.nn.ModuleList):  # routed experts
            width = module[0].down_proj.in_features
            for e, expert in enumerate(module):
                mine = [i - e * width for i in d.keep if i // width == e]
                _mask_input(expert.down_proj, _channel_mask(width, mine))
        elif d.policy == "prune_channels":
            down = module.w2 if hasattr(module, "w2") else module.down_proj
            _mask_input(down, _channel_mask(down.in_features, d.keep))
        elif d.policy == "prune_experts":
            _mask_router(module, d.keep)
        elif d.policy == "drop_block":
            module.register_forward_hook(lambda mod, args, out: args[0])
        elif d.policy == "linear_replace":
            w, b = linear_maps[d.path]
            module.register_forward_hook(lambda mod, args, out, w=w, b=b: args[0] @ w.T + b)
    return ref


def _in_place(model: torch.nn.Module, plan: Plan, linear_maps: dict) -> torch.nn.Module:
    """Surgery called by hand (not through apply_plan): widths first, blocks from the top down."""
    m = copy.deepcopy(model)
    blocks = []
    # routed-expert channel ids name the original experts: cut them before experts go
    for d in sorted(plan.decisions, key=lambda d: not d.path.endswith(".experts")):
        if d.policy in ("drop_block", "linear_replace"):
            blocks.append(d)
            continue
        if d.path.endswith(".experts"):
            prune_expert_channels(m.get_submodule(d.path.rpartition(".")[0]), d.keep)
            continue
        module = m.get_submodule(d.path)
        {"prune_heads": prune_heads, "prune_channels": prune_ffn_channels, "prune_experts": prune_experts}[d.policy](
            module, d.keep
        )
    for d in sorted(blocks, key=lambda d: (d.path.split(".")[0], int(d.path.split(".")[1])), reverse=True):
        if d.policy == "drop_block":
            drop_block(m, d.path)
        else:
            replace_with_linear(m, d.path, *linear_maps[d.path])
    return m


def _expected_params(model: torch.nn.Module, plan: Plan, linear_maps: dict) -> int:
    """Parameter count the unit tree predicts for the plan (checks unit_params too)."""
    tree = build_unit_tree(model, size=32)
    total = tree.params
    kept_experts = {d.path: len(d.keep) for d in plan.decisions if d.policy == "prune_experts"}
    for d in plan.decisions:
        if d.path.endswith(".experts"):  # one channel costs gate row + up row + down column per kept expert
            moe = d.path.rpartition(".")[0]
            unit = tree[f"{d.path}#channels"]
            experts = unit.constraints["experts"]
            per_channel = unit.unit_params // experts
            total -= (unit.count - len(d.keep) // experts) * per_channel * kept_experts.get(moe, experts)
            continue
        node = tree[d.path]
        if d.policy in ("drop_block", "linear_replace"):
            total -= node.params
            if d.policy == "linear_replace":
                total += sum(t.numel() for t in linear_maps[d.path])
        else:
            unit = node.children[0]
            total -= (unit.count - len(d.keep)) * unit.unit_params
    return total


@st.composite
def dense_cases(draw, moe: bool = False):
    n_heads = draw(st.integers(1, 4))
    head_dim = draw(st.sampled_from([6, 8]))
    n_layers = draw(st.integers(1, 3))
    n_refiner = draw(st.integers(0, 1))
    moe_cfg = None
    if moe:
        e = draw(st.integers(2, 5))
        moe_cfg = dict(num_experts=e, moe_topk=draw(st.integers(1, e)), moe_intermediate_size=draw(st.integers(1, 6)),
                       num_shared_expert=draw(st.integers(0, 1)))
    seed = draw(st.integers(0, 2**16))
    model = _zimage(n_heads, head_dim, n_layers, n_refiner, seed, moe_cfg)
    decisions: list[Decision] = []
    linear_maps: dict = {}
    dim = n_heads * head_dim
    for name in ("noise_refiner", "context_refiner", "layers"):
        for i, block in enumerate(getattr(model, name)):
            path = f"{name}.{i}"
            fate = draw(st.sampled_from(["keep", "drop", "linear"])) if name == "layers" else "keep"
            if fate == "drop":
                decisions.append(Decision(path, "drop_block"))
                continue
            if fate == "linear":
                g = torch.Generator().manual_seed(seed + 7 * i)
                w = torch.eye(dim, dtype=torch.float64) + 0.1 * torch.randn(dim, dim, generator=g, dtype=torch.float64)
                linear_maps[path] = (w, 0.1 * torch.randn(dim, generator=g, dtype=torch.float64))
                decisions.append(Decision(path, "linear_replace", linear={"dim": dim, "fit": "random"}))
                continue
            if draw(st.booleans()):
                decisions.append(Decision(f"{path}.attention", "prune_heads", keep=_subset(draw, n_heads), original_count=n_heads))
            ffn = block.feed_forward
            if hasattr(ffn, "experts"):
                e, k = len(ffn.experts), ffn.gate.moe_topk
                if draw(st.booleans()):
                    decisions.append(Decision(f"{path}.feed_forward", "prune_experts", keep=_subset(draw, e, k)))
                if draw(st.booleans()):  # routed-expert channels: each expert its own subset, one width
                    width = ffn.experts[0].down_proj.in_features
                    kept = draw(st.integers(1, width))
                    flat = []
                    for j in range(e):
                        ids = draw(st.permutations(range(width)))[:kept]
                        flat.extend(j * width + c for c in sorted(ids))
                    decisions.append(Decision(f"{path}.feed_forward.experts", "prune_channels", keep=flat))
                if ffn.shared_mlp is not None and draw(st.booleans()):
                    width = ffn.shared_mlp.down_proj.in_features
                    decisions.append(Decision(f"{path}.feed_forward.shared_mlp", "prune_channels", keep=_subset(draw, width)))
            elif draw(st.booleans()):
                hidden = ffn.w1.out_features
                decisions.append(Decision(f"{path}.feed_forward", "prune_channels", keep=_subset(draw, hidden), original_count=hidden))
    plan = Plan(model=model_identity(model, "tiny"), budget={"text": "property"}, pruner="hypothesis", decisions=decisions)
    inputs = _inputs(seed, side=draw(st.sampled_from([2, 4])), cap_len=draw(st.integers(1, 6)))
    return model, plan, linear_maps, inputs


def _check_case(model, plan, linear_maps, inputs) -> None:
    reference = _run(_masked_reference(model, plan, linear_maps), inputs)
    surgered = _in_place(model, plan, linear_maps)
    out = _run(surgered, inputs)
    assert out.shape == reference.shape
    assert torch.allclose(out, reference, atol=ATOL, rtol=0), (out - reference).abs().max().item()
    # physically smaller, by exactly what the unit tree predicts
    assert sum(p.numel() for p in surgered.parameters()) == _expected_params(model, plan, linear_maps)
    # replaying the plan on a fresh copy gives the very same outputs, and leaves the original alone
    before = _run(model, inputs)
    replayed = apply_plan(model, plan, linear_maps=linear_maps)
    assert torch.equal(_run(replayed, inputs), out)
    assert torch.equal(_run(model, inputs), before)


@PROPERTY
@given(dense_cases())
def test_dense_zimage_surgery_matches_masked_reference(case):
    _check_case(*case)


@PROPERTY
@given(dense_cases(moe=True))
def test_moe_transformer_surgery_matches_masked_reference(case):
    _check_case(*case)


# ---------------------------------------------------------------------------------------------
# MoE block family (TinyMoEBlock, HunyuanImage-3.0 layout)
# ---------------------------------------------------------------------------------------------
@st.composite
def moe_cases(draw):
    dim = draw(st.integers(2, 12))
    e = draw(st.integers(1, 8))
    k = draw(st.integers(1, e))
    width = draw(st.integers(1, 8))
    shared = draw(st.integers(0, 2))
    seed = draw(st.integers(0, 2**16))
    block = _randomise(TinyMoEBlock(dim, e, k, width, shared), seed)
    keep = _subset(draw, e, k)
    shared_keep = _subset(draw, width * shared) if shared else None
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 7)), dim)
    tokens = torch.randn(shape, generator=torch.Generator().manual_seed(seed + 3), dtype=torch.float64)
    return block, keep, shared_keep, tokens


@PROPERTY
@given(moe_cases())
def test_moe_block_prune_experts_matches_masked_router(case):
    block, keep, shared_keep, tokens = case
    ref = copy.deepcopy(block)
    _mask_router(ref, keep)
    if shared_keep is not None:
        _mask_input(ref.shared_mlp.down_proj, _channel_mask(ref.shared_mlp.down_proj.in_features, shared_keep))
    pruned = copy.deepcopy(block)
    prune_experts(pruned, keep)
    if shared_keep is not None:
        prune_ffn_channels(pruned.shared_mlp, shared_keep)
    with torch.no_grad():
        expected, got = ref(tokens), pruned(tokens)
    assert torch.allclose(got, expected, atol=ATOL, rtol=0), (got - expected).abs().max().item()
    assert pruned.gate.wg.weight.shape == (len(keep), tokens.shape[-1])
    assert len(pruned.experts) == len(keep) == pruned.num_experts
    assert torch.equal(pruned.experts[0].down_proj.weight, block.experts[keep[0]].down_proj.weight)


def _moe_functional(tokens, router_w, router_b, experts, top_k, shared):
    """Independent MoE forward from raw tensors: softmax -> top-k -> renormalise -> weighted sum."""
    x = tokens.reshape(-1, tokens.shape[-1])
    logits = x @ router_w.T + (router_b if router_b is not None else 0.0)
    probs = torch.softmax(logits.float(), dim=-1)
    w, idx = torch.topk(probs, top_k, dim=-1)
    w = w / w.sum(-1, keepdim=True)
    out = torch.zeros_like(x)
    for j, (gate_up, down) in enumerate(experts):
        up, gate = (x @ gate_up.T).chunk(2, dim=-1)
        y = (up * torch.nn.functional.silu(gate)) @ down.T
        out += y * (w * (idx == j)).sum(-1, keepdim=True)
    out = out.reshape(tokens.shape)
    return out + shared(tokens) if shared is not None else out


@st.composite
def merge_cases(draw):
    block, _, _, tokens = draw(moe_cases())
    e, k = len(block.experts), block.gate.moe_topk
    n_groups = draw(st.integers(k, e))
    order = draw(st.permutations(range(e)))
    cuts = sorted(draw(st.permutations(range(1, e)))[: n_groups - 1]) if n_groups > 1 else []
    bounds = [0, *cuts, e]
    groups = [sorted(order[a:b]) for a, b in zip(bounds, bounds[1:])]
    weights = draw(st.one_of(st.none(), st.lists(st.floats(0.1, 5.0), min_size=e, max_size=e)))
    router = draw(st.sampled_from(["lse", "max"]))
    return block, groups, weights, router, tokens


@PROPERTY
@given(merge_cases())
def test_moe_block_merge_matches_functional_reference(case):
    block, groups, weights, router, tokens = case
    e = len(block.experts)
    w = torch.tensor(weights if weights is not None else [1.0] * e, dtype=torch.float64)
    rows, biases, experts = [], [], []
    for g in groups:
        c = (w[g] / w[g].sum()).float()
        experts.append(tuple(sum(ci * getattr(block.experts[i], name).weight for ci, i in zip(c, g))
                             for name in ("gate_and_up_proj", "down_proj")))
        if router == "lse":
            rows.append(block.gate.wg.weight[g].mean(0))
            biases.append(torch.log(torch.tensor(float(len(g)))))
        else:
            rows.append(block.gate.wg.weight[g[int(torch.argmax(w[g]))]])
            biases.append(torch.tensor(0.0))
    merged = merge_experts(copy.deepcopy(block), groups, weights, router=router)
    with torch.no_grad():
        expected = _moe_functional(tokens, torch.stack(rows), torch.stack(biases), experts, block.gate.moe_topk, block.shared_mlp)
        got = merged(tokens)
    assert len(merged.experts) == len(groups) == merged.num_experts
    assert torch.allclose(got, expected, atol=ATOL, rtol=0), (got - expected).abs().max().item()


@settings(max_examples=30, deadline=None)
@given(moe_cases())
def test_merge_with_singleton_groups_is_a_relabelling(case):
    block, _, _, tokens = case
    e = len(block.experts)
    groups = [[i] for i in reversed(range(e))]
    merged = merge_experts(copy.deepcopy(block), groups)
    assert merged.gate.wg.bias is None  # no group of two: the router keeps its bias-free layout
    with torch.no_grad():
        assert torch.allclose(merged(tokens), block(tokens), atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------------------------
# errors (one line, naming the value)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    return _zimage(n_heads=2, head_dim=8, n_layers=2, n_refiner=1, seed=0)


def test_expert_channel_plans_are_checked_in_one_line():
    moe_cfg = dict(num_experts=3, moe_topk=1, moe_intermediate_size=4, num_shared_expert=0)
    model = _zimage(n_heads=2, head_dim=8, n_layers=1, n_refiner=0, seed=0, moe=moe_cfg)
    path = "layers.0.feed_forward.experts"

    def plan(*decisions):
        return Plan(model=model_identity(model, "tiny"), budget={"text": "x"}, pruner="test", decisions=list(decisions))

    with pytest.raises(ValueError, match="every expert must keep the same number"):
        apply_plan(model, plan(Decision(path, "prune_channels", keep=[0, 1, 4])))  # expert 0 keeps 2, expert 1 keeps 1
    with pytest.raises(ValueError, match="out of range for 12 units"):
        apply_plan(model, plan(Decision(path, "prune_channels", keep=[0, 4, 12])))
    with pytest.raises(ValueError, match="not admitted at 'layers.0.feed_forward.experts'"):
        apply_plan(model, plan(Decision(path, "prune_experts", keep=[0])))
    # ids name the original experts even when experts go in the same plan
    pruned = apply_plan(model, plan(Decision("layers.0.feed_forward", "prune_experts", keep=[1, 2]),
                                    Decision(path, "prune_channels", keep=[0, 5, 11])))
    experts = pruned.layers[0].feed_forward.experts
    original = model.layers[0].feed_forward.experts
    assert len(experts) == 2 and experts[0].down_proj.in_features == 1
    assert torch.equal(experts[0].down_proj.weight, original[1].down_proj.weight[:, [1]])
    assert torch.equal(experts[1].down_proj.weight, original[2].down_proj.weight[:, [3]])


def test_surgery_index_errors(tiny):
    attn = copy.deepcopy(tiny.layers[0].attention)
    with pytest.raises(ValueError, match="keep is empty"):
        prune_heads(attn, [])
    with pytest.raises(ValueError, match="sorted and unique"):
        prune_heads(attn, [1, 0])
    with pytest.raises(ValueError, match="index 2 is out of range for 2 units"):
        prune_heads(attn, [0, 2])
    with pytest.raises(ValueError, match="needs a diffusers Attention"):
        prune_heads(tiny.layers[0].feed_forward, [0])
    with pytest.raises(ValueError, match="needs a SwiGLU FFN"):
        prune_ffn_channels(attn, [0])
    with pytest.raises(ValueError, match="sorted and unique"):
        prune_ffn_channels(copy.deepcopy(tiny.layers[0].feed_forward), [3, 3])
    with pytest.raises(ValueError, match="not a block inside a ModuleList"):
        drop_block(copy.deepcopy(tiny), "layers")
    with pytest.raises(ValueError, match="out of range; layers has 2 blocks"):
        drop_block(copy.deepcopy(tiny), "layers.5")
    with pytest.raises(ValueError, match=r"weight has shape \(3, 3\), expected \(16, 16\)"):
        replace_with_linear(copy.deepcopy(tiny), "layers.0", torch.zeros(3, 3), torch.zeros(3))


def test_moe_surgery_errors():
    block = _randomise(TinyMoEBlock(4, 4, 2, 3), 0)
    with pytest.raises(ValueError, match="keeps 1 experts but top_k is 2; keep at least 2"):
        prune_experts(copy.deepcopy(block), [3])
    with pytest.raises(ValueError, match="out of range for 4 units"):
        prune_experts(copy.deepcopy(block), [0, 4])
    with pytest.raises(ValueError, match=r"exactly once \(duplicated \[1\], missing \[3\]"):
        merge_experts(copy.deepcopy(block), [[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="leaves 1 experts but top_k is 2"):
        merge_experts(copy.deepcopy(block), [[0, 1, 2, 3]])
    with pytest.raises(ValueError, match="router merge 'mean' is unknown"):
        merge_experts(copy.deepcopy(block), [[0, 1], [2, 3]], router="mean")
    with pytest.raises(ValueError, match="weights must be 4 finite non-negative"):
        merge_experts(copy.deepcopy(block), [[0, 1], [2, 3]], weights=[1.0, -1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="needs an MoE block"):
        prune_experts(torch.nn.Linear(2, 2), [0])


def test_apply_plan_errors(tiny):
    def plan(*decisions):
        return Plan(model=model_identity(tiny), budget={"text": "t"}, pruner="manual", decisions=list(decisions))

    with pytest.raises(ValueError, match="policy 'drop_block' is not admitted at 'noise_refiner.0'"):
        apply_plan(tiny, plan(Decision("noise_refiner.0", "drop_block")))
    with pytest.raises(ValueError, match="policy 'prune_experts' is not admitted at 'layers.0.feed_forward'"):
        apply_plan(tiny, plan(Decision("layers.0.feed_forward", "prune_experts", keep=[0])))
    with pytest.raises(ValueError, match="no node 'layers.9' in the unit tree"):
        apply_plan(tiny, plan(Decision("layers.9", "drop_block")))
    with pytest.raises(ValueError, match="'layers.1.attention' is inside 'layers.1', which the plan removes"):
        apply_plan(tiny, plan(Decision("layers.1", "drop_block"), Decision("layers.1.attention", "prune_heads", keep=[0])))
    with pytest.raises(ValueError, match="no weights were given"):
        apply_plan(tiny, plan(Decision("layers.1", "linear_replace")))
    with pytest.raises(ValueError, match="plan is for FluxTransformer2DModel but the model is ZImageTransformer2DModel"):
        apply_plan(tiny, Plan(model={"class": "FluxTransformer2DModel"}, budget={}, pruner="x"))


# ---------------------------------------------------------------------------------------------
# linear maps, meta-device replay, bookkeeping
# ---------------------------------------------------------------------------------------------
def test_fit_linear_map_recovers_a_linear_relation():
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(6, 5, generator=g), torch.randn(6, generator=g)
    x = torch.randn(3, 40, 5, generator=g)  # (timesteps, tokens, dim): leading dims are flattened
    fw, fb = fit_linear_map(x, x @ w.T + b)
    assert torch.allclose(fw, w, atol=1e-4) and torch.allclose(fb, b, atol=1e-4)
    rw, _ = fit_linear_map(x, x @ w.T + b, ridge=100.0)
    assert rw.norm() < 0.9 * w.norm()  # ridge shrinks the map
    with pytest.raises(ValueError, match=r"inputs \(3, 40, 5\) and outputs \(3, 39, 6\) differ in leading dims"):
        fit_linear_map(x, torch.zeros(3, 39, 6))
    with pytest.raises(ValueError, match="ridge must be >= 0"):
        fit_linear_map(x, x, ridge=-1.0)


def test_fitted_linear_block_reproduces_a_linear_block(tiny):
    """A block that IS linear in its input is replaced without error by the fitted map."""
    model = copy.deepcopy(tiny)
    inputs = _inputs(0, side=4, cap_len=3)
    captured = {}
    w_true = torch.eye(16, dtype=torch.float64) * 0.5
    model.layers[1].register_forward_hook(lambda m, a, o: a[0] @ w_true.T)
    model.layers[1].register_forward_hook(lambda m, a, o: captured.update(x=a[0], y=o))
    expected = _run(model, inputs)
    w, b = fit_linear_map(captured["x"], captured["y"])
    plan = Plan(model=model_identity(tiny), budget={}, pruner="manual", decisions=[Decision("layers.1", "linear_replace")])
    replaced = apply_plan(tiny, plan, linear_maps={"layers.1": {"weight": w, "bias": b}})
    assert type(replaced.layers[1]).__name__ == "LinearBlock"
    assert torch.allclose(_run(replaced, inputs), expected, atol=1e-8)


def test_prune_heads_updates_attention_bookkeeping(tiny):
    attn = prune_heads(copy.deepcopy(tiny.layers[0].attention), [1])
    assert (attn.heads, attn.inner_dim, attn.inner_kv_dim, attn.sliceable_head_dim) == (1, 8, 8, 1)
    assert attn.to_q.weight.shape == (8, 16) and attn.to_out[0].weight.shape == (16, 8)
    assert torch.equal(attn.to_k.weight, tiny.layers[0].attention.to_k.weight[8:16])
    assert attn.to_out[0].in_features == 8


def test_apply_plan_on_full_size_meta_model():
    with torch.device("meta"):
        model = ZImageTransformer2DModel()
    tree = build_unit_tree(model)
    decisions = [Decision(f"layers.{i}", "drop_block") for i in range(22, 30)]
    decisions += [Decision("layers.0.attention", "prune_heads", keep=list(range(0, 30, 2)))]
    decisions += [Decision("noise_refiner.0.feed_forward", "prune_channels", keep=list(range(0, 10240, 4)))]
    plan = Plan(model=model_identity(model), budget={}, pruner="manual", decisions=decisions)
    pruned = apply_plan(model, plan)
    expected = tree.params - 8 * tree["layers.0"].params
    expected -= 15 * tree["layers.0.attention#heads"].unit_params + 7680 * tree["layers.0.feed_forward#channels"].unit_params
    assert sum(p.numel() for p in pruned.parameters()) == expected
    assert len(pruned.layers) == 22 and len(model.layers) == 30


def test_merge_in_a_moe_transformer_runs_forward():
    model = _zimage(2, 8, 2, 1, seed=1, moe=dict(num_experts=4, moe_topk=2, moe_intermediate_size=3, num_shared_expert=1))
    plan = Plan(model=model_identity(model), budget={}, pruner="manual", decisions=[
        Decision("layers.0.feed_forward", "merge_experts", groups=[[0, 2], [1], [3]], weights=[1.0, 1.0, 3.0, 1.0],
                 merge_router="max"),
        Decision("layers.1.feed_forward", "prune_experts", keep=[1, 3]),
    ])
    pruned = apply_plan(model, plan)
    assert len(pruned.layers[0].feed_forward.experts) == 3 and pruned.layers[0].feed_forward.gate.wg.bias is None
    out = _run(pruned, _inputs(1, side=4, cap_len=3))
    assert out.shape == (1, 4, 1, 4, 4) and torch.isfinite(out).all()
    assert len(model.layers[0].feed_forward.experts) == 4  # the original is untouched
