"""Test-session set-up: DDS stays on this machine, on a domain of its own."""
import os
import random

# Set before anything imports rclpy. One domain per pytest run so parallel runs never meet.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 101)))
os.environ.setdefault('MMTOK_REQUIRE_LOCAL_DDS', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')

import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
