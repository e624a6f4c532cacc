"""N road-side units, one rsu_node each: ros2 launch mmtok_ros multi_rsu.launch.py rsus:=3.

RSU k runs in namespace ``rsuk`` with ``rsu_id:=rsuk``: it reads its own camera and LiDAR
(``/rsuk/camera/image_raw``, ``/rsuk/lidar/points``), the RSSI of its own link
(``/rssi/rsuk``) and of its next neighbour (``/rssi/rsu<k+1>``, the last RSU reads the one
before it), and hears every other RSU's ``/rsuj/mmtok/link_status``. The topic layout is
that of ``mmtok simulate --rsus N`` (docs/road.md).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from mmtok_ros.ros.launch_signals import sigint_on_ctrl_c


def rsu_nodes(context, *args, **kwargs) -> list:
    """The N nodes (and Ctrl-C passed on to them), built once the launch arguments are known."""
    n = int(LaunchConfiguration('rsus').perform(context))
    if n < 2:
        raise ValueError(f'rsus:={n}: need at least 2 RSUs')
    params_file = LaunchConfiguration('params_file').perform(context)
    ids = [f'rsu{k}' for k in range(1, n + 1)]
    nodes = []
    for k, rsu in enumerate(ids):
        neighbour = ids[k + 1] if k + 1 < n else ids[k - 1]
        nodes.append(Node(
            package='mmtok_ros',
            executable='rsu_node',
            name='rsu_node',
            namespace=rsu,
            output='screen',
            parameters=[params_file,
                        {'model_path': LaunchConfiguration('model_path'),
                         'device': LaunchConfiguration('device'),
                         'use_sim_time': LaunchConfiguration('use_sim_time'),
                         'rsu_id': rsu,
                         'target_rsu': neighbour,
                         'neighbours': ','.join(i for i in ids if i != rsu),
                         'rssi_topics': [f'/rssi/{rsu}', f'/rssi/{neighbour}']}],
        ))
    return nodes + [sigint_on_ctrl_c(nodes)]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory('mmtok_ros')
    args = [
        DeclareLaunchArgument('rsus', default_value='3', description='number of RSUs (>= 2)'),
        DeclareLaunchArgument('params_file', default_value=os.path.join(share, 'config',
                                                                         'rsu.yaml'),
                              description='rsu_node parameter file (shared by every RSU)'),
        DeclareLaunchArgument('model_path', default_value='',
                              description='model file (empty: the shipped model)'),
        DeclareLaunchArgument('device', default_value='cuda',
                              description='cpu, cuda or cuda:N (cuda falls back to cpu)'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='follow /clock (bag replay)'),
    ]
    return LaunchDescription(args + [OpaqueFunction(function=rsu_nodes)])
