"""Routing behaviour: compute shrinks with K, CLS is kept, gradients reach router and r_l."""
import pytest
import torch

from mmtok_ros.model import MultiModalTransformer
from mmtok_ros.model import routing
from mmtok_ros.model.transformer import Attention, RoutedLayer, plain_attention
from model_helpers import tiny, window


def tokens_seen_by_attention(model, batch):
    """Sequence lengths that really entered each attention module (forward hooks)."""
    seen = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[1]))
             for m in model.modules() if isinstance(m, Attention)]
    with torch.no_grad():
        model(batch)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize('gamma', [0.2, 0.5, 0.9])
def test_attention_really_runs_on_k_tokens(gamma):
    cfg = tiny(target_keep_ratio=gamma)
    model = MultiModalTransformer(cfg).eval()
    k = round(cfg.n_tokens * gamma)
    assert tokens_seen_by_attention(model, window(cfg)) == [k] * cfg.n_layers
    assert model.tokens_per_layer() == [k] * cfg.n_layers


def test_mha_processes_every_token_and_mod_routes_every_other_layer():
    mha = MultiModalTransformer(tiny('mha')).eval()
    n = mha.cfg.n_tokens
    assert tokens_seen_by_attention(mha, window(mha.cfg)) == [n, n, n]
    mod = MultiModalTransformer(tiny('mod', mod_capacity=0.25)).eval()
    assert mod.tokens_per_layer() == [n, round(0.25 * n), n]


def test_tome_merges_tokens_layer_by_layer():
    model = MultiModalTransformer(tiny('tome', tome_keep_fraction=0.4)).eval()
    seen = tokens_seen_by_attention(model, window(model.cfg))
    assert seen == model.tokens_per_layer()
    assert seen[0] == model.cfg.n_tokens and all(a > b for a, b in zip(seen, seen[1:]))


def test_cls_is_always_selected_even_with_the_lowest_score():
    scores = torch.arange(10.0).repeat(3, 1)          # CLS (index 0) scores lowest
    idx = routing.top_k_indices(scores, 3)
    assert (idx[:, 0] == 0).all()
    assert idx[0].tolist() == [0, 9, 8]


def test_unselected_tokens_bypass_the_block_unchanged():
    cfg = tiny(target_keep_ratio=0.3, n_layers=1)
    model = MultiModalTransformer(cfg).eval()
    layer = model.layers[0]
    x = torch.randn(2, cfg.n_tokens, cfg.d_model)
    with torch.no_grad():
        y, _ = layer(x)
    changed = (y != x).any(-1)                          # (B, N)
    assert changed.sum(1).tolist() == [layer.tokens_processed(cfg.n_tokens)] * 2
    assert changed[:, 0].all()                          # CLS among them


def test_gradients_reach_router_keep_ratio_and_tokenizers():
    model = MultiModalTransformer(tiny()).train()
    loss = model(window(model.cfg)).sum() + model.keep_ratio_penalty()
    loss.backward()
    for layer in model.routed_layers():
        assert layer.router.fc1.weight.grad.abs().sum() > 0
        assert layer.keep_ratio.grad is not None and layer.keep_ratio.grad != 0
    assert model.frame_tokenizer.tokenizers['image'].stem[0].weight.grad.abs().sum() > 0


def test_eq18_mixes_floor_and_ceil_passes():
    cfg = tiny(n_layers=1, target_keep_ratio=0.5)
    layer = MultiModalTransformer(cfg).layers[0].train()
    x = torch.randn(1, cfg.n_tokens, cfg.d_model)
    n = cfg.n_tokens
    with torch.no_grad():
        layer.keep_ratio.fill_((20 + 0.25) / n)        # N r = 20.25 -> K_down 20, K_up 21
        mixed, _ = layer(x)
        layer.eval()
        layer.keep_ratio.fill_(20 / n)
        down, _ = layer(x)
        layer.keep_ratio.fill_(21 / n)
        up, _ = layer(x)
    torch.testing.assert_close(mixed, 0.25 * up + 0.75 * down, rtol=1e-5, atol=1e-5)


def test_keep_ratio_penalty_pulls_r_avg_to_gamma_on_a_toy_task():
    torch.manual_seed(0)
    cfg = tiny(target_keep_ratio=0.3, keep_ratio_init=0.8)
    model = MultiModalTransformer(cfg).train()
    batch, target = window(cfg, batch=4), torch.tensor([[1.0], [0.0], [1.0], [0.0]])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        task = torch.nn.functional.binary_cross_entropy_with_logits(model(batch), target)
        (task + model.keep_ratio_penalty()).backward()
        opt.step()
    r_avg = float(model.keep_ratios().detach().mean())
    assert abs(r_avg - 0.3) < 0.05, r_avg


def test_ablations_freeze_what_the_paper_says():
    a1 = MultiModalTransformer(tiny('ablation1'))
    assert not any(p.requires_grad for p in a1.frame_tokenizer.parameters())
    a2 = MultiModalTransformer(tiny('ablation2'))
    assert not any(p.requires_grad for l in a2.routed_layers() for p in l.router.parameters())
    a3 = MultiModalTransformer(tiny('ablation3', target_keep_ratio=0.3))
    assert all(not l.keep_ratio.requires_grad for l in a3.routed_layers())
    assert float(a3.keep_ratio_penalty()) == 0.0


@pytest.mark.parametrize('with_bias', [False, True])
def test_attention_matches_plain_attention(with_bias):
    """The project's Attention (fused SDPA kernel) against the reference ``plain_attention``
    on the same projections, with and without the routed layers' additive key bias."""
    torch.manual_seed(0)
    attn = Attention(d_model=32, n_heads=4, head_dim=8).eval()
    x = torch.randn(2, 50, 32)
    bias = torch.randn(2, 1, 1, 50) if with_bias else None
    with torch.no_grad():
        q, k, v = attn.qkv(x).view(2, 50, 3, 4, 8).permute(2, 0, 3, 1, 4).unbind(0)
        expected = attn.proj(plain_attention(q, k, v, bias).transpose(1, 2).reshape(2, 50, 32))
        got = attn(x, bias=bias)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_attention_bias_of_minus_inf_removes_those_keys():
    """A key with bias -inf is not attended to: the kept tokens' outputs equal attention over
    the kept tokens alone."""
    torch.manual_seed(0)
    attn = Attention(d_model=32, n_heads=4, head_dim=8).eval()
    x = torch.randn(1, 20, 32)
    kept = torch.arange(20) % 3 != 0
    bias = torch.zeros(1, 1, 1, 20).masked_fill(~kept, float('-inf'))
    with torch.no_grad():
        masked = attn(x, bias=bias)[:, kept]
        alone = attn(x[:, kept])
    torch.testing.assert_close(masked, alone, rtol=1e-4, atol=1e-5)


def test_deadline_override_scales_k_and_restores():
    model = MultiModalTransformer(tiny(target_keep_ratio=0.6)).eval()
    before = model.tokens_per_layer()
    model.set_keep_override(0.5)
    assert model.tokens_per_layer() == [round(model.cfg.n_tokens * 0.3)] * 3
    model.set_keep_override(None)
    assert model.tokens_per_layer() == before


def test_absent_modality_uses_the_missing_token_and_still_predicts():
    cfg = tiny()
    model = MultiModalTransformer(cfg).eval()
    batch = window(cfg, batch=1)
    batch['present'] = torch.ones(1, cfg.n_frames, len(cfg.modalities), dtype=torch.bool)
    with torch.no_grad():
        full = model(batch)
        batch['present'][0, -1, 0] = False             # camera missing in the newest frame
        degraded = model(batch)
    assert torch.isfinite(degraded).all() and not torch.equal(full, degraded)


devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


@pytest.mark.parametrize('device', devices)
def test_one_implementation_serves_every_device(device):
    cfg = tiny()
    model = MultiModalTransformer(cfg).eval()
    batch = window(cfg)
    with torch.no_grad():
        reference = model(batch)
        moved = model.to(device)(window_to(batch, device)).cpu()
    torch.testing.assert_close(moved, reference, rtol=1e-3, atol=1e-4)


def window_to(batch, device):
    return {k: v.to(device) for k, v in batch.items()}


def test_bipartite_merge_conserves_token_mass_and_averages_by_size():
    from mmtok_ros.model.tome import bipartite_merge, merge_count_schedule
    x = torch.randn(2, 20, 8)
    size = torch.ones(2, 20, 1)
    merged, merged_size = bipartite_merge(x, size, 6)
    assert merged.shape == (2, 14, 8) and merged_size.shape == (2, 14, 1)
    assert torch.equal(merged_size.sum(1), size.sum(1))             # no token is lost
    torch.testing.assert_close((merged * merged_size).sum(1), x.sum(1), rtol=1e-5, atol=1e-5)
    assert merge_count_schedule(100, 4, 0.3) == [18, 18, 18, 18]
    assert bipartite_merge(x, size, 0)[0] is x                      # r <= 0 is a no-op
