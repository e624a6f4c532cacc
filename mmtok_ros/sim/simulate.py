"""The two-RSU testbed (paper Sec. IV-B): the road preset ``layout.TESTBED`` with the kinds of
``scene.py``.

``simulate(out_dir, ...)`` renders RSU 1's camera and LiDAR, computes the RSSI of both RSUs with
a physical channel model and records everything as a real testbed would (``mmtok simulate``):
one bag and one truth sidecar per scenario, written by ``scenario_writer.write_scenario`` with
the timing, drops and jitter of ``recording.py``, and an ``index.json``. ``drop_modality`` adds
more drops to one modality ('image', 'lidar' or 'rssi') for robustness tests. ``kind_set='random'``
draws every scenario afresh (``randomized.py``) instead of cycling through named kinds.

Ground truth: RSU 1 is the home RSU, so a frame is ``blocked`` when the true RSSI of RSU 1 is
below S_th = -47 dBm (paper Eq. (8)); ``blockage_intervals_ns`` are [first, last] nominal times
(inclusive) of each blocked run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..constants import FRAME_PERIOD_NS
from ..errors import UserInputError
from . import bag_writer as bw
from .layout import TESTBED
from .recording import (BASE_DROP_PROB, MODALITIES, SCENARIO_SPACING_NS, blocked_runs,
                        parse_drop_modality, refuse_to_overwrite)
from .randomized import DRAW_VERSION, RANDOM_KIND_SET, make_random_scenario
from .scenario_writer import IndexRow, link_channel, write_json, write_scenario, write_scenarios
from .scene import KIND_SETS, SCENARIO_KINDS, Scenario, make_scenario

DEFAULT_FRAMES = 85                      # 10 x 85 frames ~ 800 five-frame windows (Sec. IV-B)
T0_NS = TESTBED.t0_ns
TRUTH_VERSION = 1


@dataclass
class ScenarioInfo(IndexRow):
    """What was written for one testbed scenario (also the rows of ``index.json``)."""
    index: int
    name: str
    kind: str
    blocks_by_design: bool
    n_frames: int
    n_blocked_frames: int
    first_blockage_ns: int | None
    first_blockage_s: float | None       # relative to the first frame
    blockage_intervals_ns: list[list[int]]
    bag_path: str
    truth_path: str
    message_counts: dict[str, int]
    payload_sha256: str
    bag_bytes: int = 0
    timing_ms: dict[str, float] = field(default_factory=dict)   # not in index.json
    drawn: dict | None = None            # --kinds random: what was drawn (absent otherwise)


def channel_truth(sc: Scenario, t_s: np.ndarray, shadow_db: dict[str, np.ndarray]
                  ) -> dict[str, dict[str, np.ndarray]]:
    """True RSSI (dBm) and blockage loss (dB) of both testbed links at times t_s."""
    return link_channel(TESTBED, sc, t_s, shadow_db)


def simulate_scenario(out_dir: Path, index: int, seed: int, n_frames: int,
                      drop: tuple[str, float] | None, progress: bool,
                      kinds: tuple | str = SCENARIO_KINDS) -> ScenarioInfo:
    """Write ``scenario_XX/`` (bag) and ``scenario_XX.truth.json`` for one testbed scenario
    (``kinds``: the named kinds to cycle through, or ``'random'``: a fresh draw)."""
    sc = (make_random_scenario(index, seed) if kinds == RANDOM_KIND_SET
          else make_scenario(index, seed, kinds))
    rec = write_scenario(out_dir, TESTBED, sc, seed, n_frames, drop=drop, progress=progress,
                         truth_fields={'version': TRUTH_VERSION,
                                       'drop_modality': list(drop) if drop else None})
    runs = rec.blockage_intervals_ns[TESTBED.home_rsu]
    first = runs[0][0] if runs else None
    return ScenarioInfo(
        index=index, name=rec.name, kind=sc.kind.name, blocks_by_design=sc.kind.blocks,
        n_frames=n_frames, n_blocked_frames=rec.blocked_frames[TESTBED.home_rsu],
        first_blockage_ns=first,
        first_blockage_s=None if first is None else round((first - rec.t0_ns) * 1e-9, 3),
        blockage_intervals_ns=runs, bag_path=str(rec.bag_path), truth_path=str(rec.truth_path),
        message_counts=rec.message_counts, payload_sha256=rec.payload_sha256,
        bag_bytes=rec.bag_bytes, timing_ms=rec.timing_ms,
        drawn=sc.drawn() if kinds == RANDOM_KIND_SET else None)


def simulate(out_dir: str | Path, *, n_scenarios: int = 10, seed: int = 0,
             frames_per_scenario: int | None = None,
             drop_modality: str | tuple[str, float] | None = None,
             progress: bool = True, kind_set: str = 'default') -> list[ScenarioInfo]:
    """Simulate ``n_scenarios`` testbed runs into ``out_dir`` (bags, truth sidecars, index.json).

    Scenario i uses kind i % 10 (see ``scene.SCENARIO_KINDS``); ``kind_set='new'``: kind
    i % 8 of ``scene.NEW_SCENARIO_KINDS`` (kinds never in the default set), ``'all'``: the 18
    in turn, ``'random'``: drawn blockers and camera jitter (``randomized.py``; its index also
    lists what was drawn). Raises FileExistsError before writing anything if a scenario bag or
    sidecar already exists.
    """
    drop = parse_drop_modality(drop_modality)
    if kind_set not in (*KIND_SETS, RANDOM_KIND_SET):
        raise UserInputError(f'unknown kind set {kind_set!r}; choose from '
                             f'{sorted((*KIND_SETS, RANDOM_KIND_SET))}')
    kinds = RANDOM_KIND_SET if kind_set == RANDOM_KIND_SET else KIND_SETS[kind_set]
    out, n_frames, infos = write_scenarios(
        out_dir, n_scenarios, frames_per_scenario, DEFAULT_FRAMES,
        lambda out, i, n: simulate_scenario(out, i, seed, n, drop, progress, kinds),
        desc='scenarios', progress=progress)
    index_doc = {'generator': 'mmtok_ros.sim', 'truth_version': TRUTH_VERSION, 'seed': seed,
                 'frame_period_ns': FRAME_PERIOD_NS, 'frames_per_scenario': n_frames,
                 'drop_modality': list(drop) if drop else None,
                 **({'kind_set': kind_set} if kind_set != 'default' else {}),
                 **({'draw_version': DRAW_VERSION} if kind_set == RANDOM_KIND_SET else {}),
                 'topics': {'image': bw.TOPIC_IMAGE, 'lidar': bw.TOPIC_LIDAR,
                            'rssi': bw.TOPIC_RSSI, 'tf_static': bw.TOPIC_TF_STATIC},
                 'scenarios': [info.index_row() for info in infos]}
    write_json(out / 'index.json', index_doc)
    return infos


__all__ = ['BASE_DROP_PROB', 'DEFAULT_FRAMES', 'MODALITIES', 'SCENARIO_SPACING_NS', 'T0_NS',
           'TRUTH_VERSION', 'ScenarioInfo', 'blocked_runs', 'channel_truth',
           'parse_drop_modality', 'refuse_to_overwrite', 'simulate', 'simulate_scenario']
