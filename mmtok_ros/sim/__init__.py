"""Deterministic 60 GHz handover testbed simulator (paper Sec. IV-B) writing rosbag2 bags.

``simulate(out_dir, ...)`` renders RSU 1's camera and LiDAR, computes the RSSI of both RSUs with
a physical channel model and records everything as a real testbed would (``mmtok simulate``).
ROS-free: needs numpy, rosbags and tqdm only.
"""
from __future__ import annotations

from .simulate import ScenarioInfo, simulate

__all__ = ['ScenarioInfo', 'simulate']
