"""Model configuration: one dataclass builds every model, presets name the paper's set-ups.

A checkpoint stores ``asdict(config)`` beside the weights, so a model file rebuilds its own
model (see ``checkpoint.py``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from ..errors import UserInputError

MODALITIES = ('image', 'lidar', 'radar', 'gps', 'rssi')
METHODS = ('routed', 'mha', 'tome', 'mod', 'ablation1', 'ablation2', 'ablation3')
# methods with a target keep ratio gamma' (the routed model and its three ablations)
ROUTED_METHODS = ('routed', 'ablation1', 'ablation2', 'ablation3')
# how the RSSI tokens reach the decision (``ModelConfig.rssi_tokens``)
RSSI_TOKEN_MODES = ('routed', 'kept', 'kept+head')
# values of the fields added after the first model files, as those files behave: a stored
# config that lacks a field gets this value (``from_dict``), and run keys leave it out
LEGACY_VALUES = {'rssi_tokens': 'routed', 'keep_ratio_bracket': 1}


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a model; the defaults are the ``paper-handover`` preset."""

    preset: str = 'paper-handover'
    # --- input ---
    modalities: tuple[str, ...] = ('image', 'lidar', 'rssi')
    n_frames: int = 5                    # tau in Section II: frames per window
    image_hw: tuple[int, int] = (256, 256)   # camera frames are resized to this
    bev_hw: tuple[int, int] = (256, 256)     # LiDAR bird's-eye-view grid (cells)
    bev_range_m: tuple[float, float, float, float] = (0.0, 51.2, -25.6, 25.6)  # x0, x1, y0, y1
    bev_ground_z_m: float = -1.4         # points below this height (sensor frame) are ground
    bev_max_z_m: float = 3.0             # points above are ignored (trees, gantries)
    image_stride: int = 8                # image pixels per token side: 256/8 = 32 -> 1024 tokens
    bev_stride: int = 8                  # BEV cells per token side
    cnn_widths: tuple[int, int] = (16, 32)   # channels of the two ResNet stages of the tokenizer
    n_radar_points: int = 300            # N_rad, Eq. 15
    gps_dim: int = 2                     # (lat, lon) or (x, y) in metres
    rssi_dim: int = 2                    # one RSSI per RSU, dBm
    # --- transformer ---
    d_model: int = 64
    n_heads: int = 8
    n_layers: int = 4
    mlp_ratio: int = 4
    router_hidden: int = 64              # width of the two-layer router (Eq. 16)
    n_classes: int = 1                   # 1: link status logit (Eq. 8); 64/152: beam index (Eq. 7)
    dropout: float = 0.0
    # --- token budget ---
    method: str = 'routed'
    target_keep_ratio: float = 0.4       # gamma' in Eq. 19
    keep_ratio_penalty: float = 10.0     # lambda in Eq. 19
    keep_ratio_init: float | None = None  # r_l at start; None: gamma'
    min_keep_ratio: float = 0.02         # lower clamp of r_l (and of the deadline controller)
    tome_keep_fraction: float = 0.3      # ToMe: fraction of tokens left after the last layer
    mod_capacity: float = 0.125          # MoD: capacity of every other (routed) layer
    # Eq. 18 bracket half-width Delta (training only): the passes run at K_lo = floor(N r) -
    # Delta + 1 and K_hi = floor(N r) + Delta and are interpolated, so dL/dr_l is a difference
    # over 2 Delta - 1 marginal tokens instead of one. 1: the paper's floor/ceil pair.
    keep_ratio_bracket: int = 1
    # RSSI tokens (beyond the paper): 'routed' (the paper: the router decides, like any
    # token), 'kept' (always processed, as CLS is), 'kept+head' (kept, and the head reads the
    # newest frame's RSSI token beside CLS). Gives the decision the link's own history.
    rssi_tokens: str = 'routed'
    # --- deployment options (Table IX/X) ---
    prune_heads_fraction: float = 0.0    # structured L2 pruning of attention heads
    prune_mlp_fraction: float = 0.0      # structured L2 pruning of MLP channels

    def __post_init__(self) -> None:
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown:
            raise UserInputError(f'unknown modalities {unknown}; choose from {MODALITIES}')
        if self.method not in METHODS:
            raise UserInputError(f'unknown method {self.method!r}; choose from {METHODS}')
        if self.d_model % self.n_heads:
            raise UserInputError(f'd_model={self.d_model} is not divisible by n_heads={self.n_heads}')
        if self.rssi_tokens not in RSSI_TOKEN_MODES:
            raise UserInputError(f'unknown rssi_tokens {self.rssi_tokens!r}; choose from '
                             f'{RSSI_TOKEN_MODES}')
        if self.rssi_tokens != 'routed' and 'rssi' not in self.modalities:
            raise UserInputError(f"rssi_tokens={self.rssi_tokens!r} needs the 'rssi' modality")
        if self.rssi_tokens != 'routed' and self.method == 'tome':
            raise UserInputError("rssi_tokens needs fixed token positions; ToMe merges them")
        if self.keep_ratio_bracket < 1:
            raise UserInputError(f'keep_ratio_bracket must be >= 1, got {self.keep_ratio_bracket}')
        if not 0.0 < self.target_keep_ratio <= 1.0:
            raise UserInputError(f'target_keep_ratio must be in (0, 1], got {self.target_keep_ratio}')
        for hw, stride, name in ((self.image_hw, self.image_stride, 'image'),
                                 (self.bev_hw, self.bev_stride, 'bev')):
            if stride < 4 or stride % 4 or hw[0] % stride or hw[1] % stride:
                raise UserInputError(f'{name}_hw={hw} must be a multiple of {name}_stride={stride}, '
                                 'itself a multiple of 4')

    # --- token counts ---
    @property
    def image_tokens(self) -> int:
        return (self.image_hw[0] // self.image_stride) * (self.image_hw[1] // self.image_stride)

    @property
    def lidar_tokens(self) -> int:
        return (self.bev_hw[0] // self.bev_stride) * (self.bev_hw[1] // self.bev_stride)

    def tokens_of(self, modality: str) -> int:
        return {'image': self.image_tokens, 'lidar': self.lidar_tokens,
                'radar': self.n_radar_points, 'gps': 1, 'rssi': 1}[modality]

    @property
    def tokens_per_frame(self) -> int:
        return sum(self.tokens_of(m) for m in self.modalities)

    def frame_offsets_of(self, modality: str) -> list[int]:
        """Positions of ``modality``'s tokens inside one frame's tokens."""
        start = 0
        for m in self.modalities:
            if m == modality:
                return list(range(start, start + self.tokens_of(m)))
            start += self.tokens_of(m)
        return []

    @property
    def n_tokens(self) -> int:
        """N: all tokens of one window, the CLS token included."""
        return self.n_frames * self.tokens_per_frame + 1

    @property
    def initial_keep_ratio(self) -> float:
        return self.target_keep_ratio if self.keep_ratio_init is None else self.keep_ratio_init

    def with_(self, **changes) -> 'ModelConfig':
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    def key_dict(self) -> dict:
        """``to_dict`` without the later fields that hold their legacy value, so a run key
        (``train/run_store.py``) of a config that could be written before them is unchanged."""
        return {k: v for k, v in asdict(self).items()
                if not (k in LEGACY_VALUES and v == LEGACY_VALUES[k])}

    @classmethod
    def from_dict(cls, values: dict) -> 'ModelConfig':
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserInputError(f'unknown config keys {unknown}')
        tuples = {f.name for f in fields(cls) if 'tuple' in str(f.type)}
        values = {**LEGACY_VALUES, **values}   # a file written before a field: its behaviour
        return cls(**{k: tuple(v) if k in tuples and v is not None else v
                      for k, v in values.items()})


PRESETS: dict[str, ModelConfig] = {
    # Section IV-A: 8 layers, 8 heads, d=64, five 5-frame modalities.
    # N = 5 * (1024 + 1024 + 300 + 1) + 1 = 11746 (the paper's 11745 leaves out the CLS token).
    'paper-deepsense': ModelConfig(
        preset='paper-deepsense', modalities=('image', 'lidar', 'radar', 'gps'),
        image_hw=(256, 256), bev_hw=(512, 512), bev_stride=16, n_layers=8, n_classes=64,
        target_keep_ratio=0.5),
    # Section IV-B: 4 layers, image + LiDAR + RSSI. N = 5 * (1024 + 1024 + 1) + 1 = 10246.
    'paper-handover': ModelConfig(),
    # Real time on a 2-core CPU: 128x128 camera and BEV, 16x16 tokens each, 4 heads of 16.
    # N = 5 * (256 + 256 + 1) + 1 = 2566.
    'rsu-cpu': ModelConfig(
        preset='rsu-cpu', image_hw=(128, 128), bev_hw=(128, 128), n_heads=4,
        bev_range_m=(0.0, 51.2, -25.6, 25.6)),
    # Quick studies on a CPU (method comparisons, tests): 32x32 camera and BEV, 4x4 tokens
    # each. N = 5 * (16 + 16 + 1) + 1 = 166.
    'rsu-mini': ModelConfig(preset='rsu-mini', image_hw=(32, 32), bev_hw=(32, 32), n_heads=4),
    # Beam prediction on a CPU (mmtok_ros.beam, docs/beam.md): paper-deepsense's modalities and
    # 64 beams at rsu-mini's size, 16 radar points. N = 5 * (16 + 16 + 16 + 1) + 1 = 246.
    'beam-mini': ModelConfig(
        preset='beam-mini', modalities=('image', 'lidar', 'radar', 'gps'), image_hw=(32, 32),
        bev_hw=(32, 32), n_heads=4, n_radar_points=16, n_classes=64, target_keep_ratio=0.5),
}


def preset(name: str, **overrides) -> ModelConfig:
    """The named preset, with ``overrides`` applied (``method=``, ``target_keep_ratio=``...)."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise UserInputError(f'unknown preset {name!r}; choose from {sorted(PRESETS)}') from None
    return replace(base, **overrides) if overrides else base


__all__ = ['LEGACY_VALUES', 'MODALITIES', 'METHODS', 'ROUTED_METHODS', 'RSSI_TOKEN_MODES',
           'ModelConfig', 'PRESETS', 'preset']
