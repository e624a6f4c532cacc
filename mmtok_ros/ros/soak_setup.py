"""What ``mmtok soak`` sets up before it runs: its options, each RSU node's parameters and
command-line arguments as ``launch/multi_rsu.launch.py`` gives them, and the road bag."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MmtokError

NODE = 'rsu_node'


class SoakError(MmtokError, RuntimeError):
    """The soak could not start (a node that does not come up, a bag without the RSUs)."""


@dataclass(frozen=True)
class SoakConfig:
    rsus: int = 3
    rate: float = 1.0
    minutes: float = 30.0            # replay time, warm-up included
    warmup_minutes: float = 2.0
    device: str = 'cpu'
    model: str = ''                  # empty: the shipped model
    bag: str = ''                    # a road bag of N RSUs; empty: simulate one
    frames: int = 60                 # frames of the simulated road scenario (18 s at 300 ms)
    seed: int = 11
    restart: bool = False            # restart a node that exits, and count it
    torch_threads: int = 1
    sample_s: float = 2.0            # RSS and counters sampled this often
    startup_timeout_s: float = 180.0


def shipped_params_file() -> str | None:
    """config/rsu.yaml: the installed share dir, else the source tree (as the launch files)."""
    try:
        from ament_index_python.packages import get_package_share_directory
        candidate = Path(get_package_share_directory('mmtok_ros')) / 'config' / 'rsu.yaml'
        if candidate.is_file():
            return str(candidate)
    except Exception:  # noqa: BLE001 - not installed with ament: the source tree
        pass
    candidate = Path(__file__).resolve().parents[2] / 'config' / 'rsu.yaml'
    return str(candidate) if candidate.is_file() else None


def rsu_ids(n: int) -> list[str]:
    return [f'rsu{k}' for k in range(1, n + 1)]


def rsu_params(k: int, ids: list[str], cfg: SoakConfig) -> dict[str, Any]:
    """RSU ``ids[k]``'s parameters, as multi_rsu.launch.py sets them (its neighbour ahead is
    the model's second RSSI; the last RSU reads the one before it)."""
    rsu = ids[k]
    neighbour = ids[k + 1] if k + 1 < len(ids) else ids[k - 1]
    params = {'device': cfg.device, 'use_sim_time': True, 'rsu_id': rsu,
              'target_rsu': neighbour, 'neighbours': ','.join(i for i in ids if i != rsu),
              'rssi_topics': [f'/rssi/{rsu}', f'/rssi/{neighbour}'],
              'input_reliable': True,   # bag_replay publishes reliable (replay.launch.py)
              'torch_threads': int(cfg.torch_threads)}
    if cfg.model:        # ``-p model_path:=`` (empty) does not parse; the default is shipped
        params['model_path'] = cfg.model
    return params


def rsu_ros_args(rsu: str) -> list[str]:
    """RSU ``rsu``'s namespace and the shipped parameter file (``params`` go over it)."""
    args = ['-r', f'__ns:=/{rsu}']
    params_file = shipped_params_file()
    if params_file:
        args += ['--params-file', params_file]
    return args


def road_bag(scratch: Path, rsus: int, frames: int, seed: int) -> Path:
    """One road scenario of ``mmtok simulate --rsus N`` (written once, then reused)."""
    from ..sim.road import simulate_road
    root = scratch / f'road{rsus}_f{frames}_s{seed}'
    bag = root / 'scenario_00'
    if (bag / 'metadata.yaml').is_file() and (root / 'index.json').is_file():
        return bag
    if root.exists():      # a half-written one of ours (interrupted)
        shutil.rmtree(root)
    simulate_road(root, n_rsus=rsus, n_scenarios=1, seed=seed, frames_per_scenario=frames,
                  progress=False)
    return bag


def check_bag(bag: Path, ids: list[str]) -> None:
    meta = bag / 'metadata.yaml'
    if not meta.is_file():
        raise SoakError(f'{bag} is not a rosbag2 directory (no metadata.yaml)')
    text = meta.read_text(errors='replace')
    missing = [t for rsu in ids for t in (f'/{rsu}/camera/image_raw', f'/rssi/{rsu}')
               if t not in text]
    if missing:
        raise SoakError(f'{bag} has no {", ".join(missing[:4])}: not a road bag of '
                        f'{len(ids)} RSUs (mmtok simulate --rsus {len(ids)})')


__all__ = ['NODE', 'SoakConfig', 'SoakError', 'check_bag', 'road_bag', 'rsu_ids',
           'rsu_params', 'rsu_ros_args', 'shipped_params_file']
