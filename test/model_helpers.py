"""Small configs and windows shared by the model tests."""
from mmtok_ros.model import preset
from mmtok_ros.model.flops import dummy_window

# A tiny routed model: 32x32 camera and BEV -> 16 tokens each, 2 frames: N = 2*(16+16+1)+1 = 67.
TINY = dict(image_hw=(32, 32), bev_hw=(32, 32), n_frames=2, n_layers=3, d_model=32, n_heads=4,
            router_hidden=16, cnn_widths=(8, 8))


def tiny(method='routed', **overrides):
    return preset('rsu-cpu', method=method, **{**TINY, **overrides})


def window(cfg, batch=2, seed=0):
    return dummy_window(cfg, batch=batch, seed=seed)
