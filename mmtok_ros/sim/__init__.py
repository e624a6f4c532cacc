"""Deterministic 60 GHz handover simulator (paper Sec. IV-B) writing rosbag2 bags.

One scenario writer (``scenario_writer.py``) records a road of RSUs (``layout.py``) with the
timing, jitter and drops of ``recording.py``. The testbed, ``simulate(out_dir, ...)``, is the
preset with two RSUs and RSU 1's camera and LiDAR (``mmtok simulate``); ``road.simulate_road``
puts N >= 3 RSUs with a sensor head each along the road (``mmtok simulate --rsus N``).
ROS-free: needs numpy, rosbags and tqdm only.
"""
from __future__ import annotations

from .simulate import ScenarioInfo, simulate

__all__ = ['ScenarioInfo', 'simulate']
