"""One RSU inference node: ros2 launch mmtok_ros rsu.launch.py [namespace:=rsu2 rsu_id:=rsu2 ...].

Topic names are relative, so with ``namespace:=rsu2`` the node reads ``/rsu2/camera/image_raw``
and ``/rsu2/lidar/points`` and publishes ``/rsu2/mmtok/link_status`` and
``/rsu2/mmtok/handover``. ``neighbours:=rsu1,rsu3`` makes it hear those RSUs' link status
(``/rsu1/mmtok/link_status``...: their namespace is their id) and hand over to the best one.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from mmtok_ros.ros.launch_signals import sigint_on_ctrl_c


def fallback_target(rsu_id: str, neighbours: str) -> str:
    """The first neighbour, else the testbed's other RSU: never the RSU itself."""
    named = [n.strip() for n in neighbours.split(',') if n.strip()]
    if named:
        return named[0]
    return 'rsu1' if rsu_id == 'rsu2' else 'rsu2'


def rsu_node(context, *args, **kwargs) -> list:
    """The node (and Ctrl-C passed on to it), built once the launch arguments are known."""
    arg = {name: LaunchConfiguration(name).perform(context)
           for name in ('params_file', 'namespace', 'rsu_id', 'neighbours', 'target_rsu',
                        'model_path', 'device', 'use_sim_time', 'image', 'points', 'rssi_own',
                        'rssi_neighbour')}
    node = Node(
        package='mmtok_ros',
        executable='rsu_node',
        name='rsu_node',
        namespace=arg['namespace'],
        output='screen',
        parameters=[arg['params_file'],
                    {'model_path': arg['model_path'],
                     'device': arg['device'],
                     'use_sim_time': arg['use_sim_time'].lower() == 'true',
                     'rsu_id': arg['rsu_id'],
                     'neighbours': arg['neighbours'],
                     'target_rsu': (arg['target_rsu']
                                    or fallback_target(arg['rsu_id'], arg['neighbours'])),
                     'image_topic': arg['image'],
                     'lidar_topic': arg['points'],
                     'rssi_topics': [arg['rssi_own'], arg['rssi_neighbour']]}],
    )
    return [node, sigint_on_ctrl_c([node])]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory('mmtok_ros')
    args = [
        DeclareLaunchArgument('params_file', default_value=os.path.join(share, 'config',
                                                                         'rsu.yaml'),
                              description='rsu_node parameter file'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of this RSU (e.g. rsu2); empty: none'),
        DeclareLaunchArgument('rsu_id', default_value='rsu1',
                              description='id of this RSU (its namespace, for neighbours)'),
        DeclareLaunchArgument('neighbours', default_value='',
                              description='comma-separated ids of neighbour RSUs to hand over '
                                          'to (their link status is heard over DDS)'),
        DeclareLaunchArgument('target_rsu', default_value='',
                              description='hand-over target while no neighbour status is '
                                          'fresh; empty: the first neighbour, else rsu2 '
                                          '(rsu1 for rsu2)'),
        DeclareLaunchArgument('model_path', default_value='',
                              description='model file (empty: the shipped model)'),
        DeclareLaunchArgument('device', default_value='cuda',
                              description='cpu, cuda or cuda:N (cuda falls back to cpu)'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='follow /clock (bag replay)'),
        DeclareLaunchArgument('image', default_value='camera/image_raw',
                              description='camera topic (sensor_msgs/Image); relative names '
                                          'resolve in the namespace'),
        DeclareLaunchArgument('points', default_value='lidar/points',
                              description='LiDAR topic (sensor_msgs/PointCloud2)'),
        DeclareLaunchArgument('rssi_own', default_value='rssi/rsu1',
                              description="RSSI of this RSU's own link (sensor_msgs/"
                                          'Temperature, dBm)'),
        DeclareLaunchArgument('rssi_neighbour', default_value='rssi/rsu2',
                              description='RSSI of the neighbour link the model reads'),
    ]
    return LaunchDescription(args + [OpaqueFunction(function=rsu_node)])
