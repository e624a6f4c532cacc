"""Model files round-trip with weights_only=True and fail with clear errors."""
import pytest
import torch

from mmtok_ros.model import MultiModalTransformer
from mmtok_ros.model.checkpoint import ModelFileError, load_model, save_model
from mmtok_ros.model.compress import autocast_for, prune_model
from model_helpers import tiny, window


def test_save_then_load_gives_identical_outputs(tmp_path):
    model = MultiModalTransformer(tiny(target_keep_ratio=0.45)).eval()
    path = save_model(tmp_path / 'm.pt', model, meta={'accuracy': 0.9})
    loaded, meta = load_model(path)
    batch = window(model.cfg)
    with torch.no_grad():
        assert torch.equal(model(batch), loaded(batch))
    assert meta == {'accuracy': 0.9} and loaded.cfg == model.cfg
    # the file is plain tensors and primitives: weights_only loading accepts it
    assert 'state_dict' in torch.load(path, weights_only=True)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ModelFileError, match='not found: .*nope.pt'):
        load_model(tmp_path / 'nope.pt')


def test_corrupt_file_is_reported(tmp_path):
    path = tmp_path / 'bad.pt'
    path.write_bytes(b'not a torch file at all')
    with pytest.raises(ModelFileError, match='corrupt'):
        load_model(path)


def test_wrong_architecture_is_reported(tmp_path):
    model = MultiModalTransformer(tiny())
    path = save_model(tmp_path / 'm.pt', model)
    payload = torch.load(path, weights_only=True)
    payload['config']['n_layers'] = 5                   # claims more layers than it holds
    torch.save(payload, path)
    with pytest.raises(ModelFileError, match='do not match'):
        load_model(path)


def test_foreign_torch_file_is_refused(tmp_path):
    path = tmp_path / 'foreign.pt'
    torch.save({'weights': torch.zeros(3)}, path)
    with pytest.raises(ModelFileError, match='not an mmtok_ros model file'):
        load_model(path)


def test_pruned_model_is_smaller_and_reloads(tmp_path):
    model = MultiModalTransformer(tiny()).eval()
    n_params = sum(p.numel() for p in model.parameters())
    prune_model(model, heads_fraction=0.5, mlp_fraction=0.5)
    assert sum(p.numel() for p in model.parameters()) < n_params
    assert model.layers[0].block.attn.n_heads == 2
    loaded, _ = load_model(save_model(tmp_path / 'p.pt', model))
    batch = window(model.cfg)
    with torch.no_grad():
        assert torch.equal(model(batch), loaded(batch))


def test_bf16_on_cpu_keeps_router_scores_in_fp32():
    model = MultiModalTransformer(tiny()).eval()
    layer = model.routed_layers()[0]
    seen = []
    hook = layer.router.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with torch.no_grad(), autocast_for('cpu', 'bf16'):
        out = model(window(model.cfg))
    hook.remove()
    assert torch.isfinite(out.float()).all() and set(seen) == {torch.float32}


def test_the_shipped_model_loads_safely_and_predicts():
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / 'models' / 'handover_rsu_cpu_g40.pt'
    model, meta = load_model(path)
    assert (model.cfg.preset, model.cfg.method, model.cfg.target_keep_ratio) == ('rsu-cpu', 'routed', 0.4)
    # its card's held-out scenarios were never trained on, in any stage
    assert meta['holdout_bags'] == [f'scenario_{i}' for i in range(40, 50)]
    trained = set(meta['train_bags']) | set(meta.get('init', {}).get('train_bags', []))
    assert not trained & set(meta['holdout_bags'])
    with torch.no_grad():
        assert torch.isfinite(model(window(model.cfg, batch=1))).all()


@pytest.mark.parametrize('name,expected', [
    ('handover_rsu_cpu_g40', [-1.581724, -1.581304, -1.581372]),
    ('handover_rsu_cpu_mha', [-1.33072, -1.332278, -1.320426]),
])
def test_the_shipped_models_give_the_outputs_they_gave_when_they_were_written(name, expected):
    """Options added to ModelConfig later (RSSI tokens, the Eq. 18 bracket) must not change a
    file that predates them: its stored config lacks them, so it gets their legacy value."""
    from pathlib import Path
    model, _ = load_model(Path(__file__).resolve().parents[1] / 'models' / f'{name}.pt')
    assert (model.cfg.rssi_tokens, model.cfg.keep_ratio_bracket) == ('routed', 1)
    with torch.no_grad():
        out = model(window(model.cfg, batch=3, seed=5))[:, 0]
    assert out.tolist() == pytest.approx(expected, abs=2e-5)
