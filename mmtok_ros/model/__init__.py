"""The routed multi-modal transformer (ROS-free)."""
from .config import METHODS, MODALITIES, PRESETS, ModelConfig, preset
from .transformer import MultiModalTransformer

__all__ = ['METHODS', 'MODALITIES', 'PRESETS', 'ModelConfig', 'MultiModalTransformer', 'preset']
