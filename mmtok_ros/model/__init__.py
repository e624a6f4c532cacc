"""The routed multi-modal transformer (ROS-free).

``config`` is plain Python; the torch modules are imported on first use (PEP 562) so that
``mmtok --help`` and the command parsers do not pay for importing torch.
"""
from .config import METHODS, MODALITIES, PRESETS, ModelConfig, preset

__all__ = ['METHODS', 'MODALITIES', 'PRESETS', 'ModelConfig', 'MultiModalTransformer', 'preset']


def __getattr__(name):
    if name == 'MultiModalTransformer':
        from .transformer import MultiModalTransformer
        return MultiModalTransformer
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
