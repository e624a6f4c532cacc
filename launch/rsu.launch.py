"""One RSU inference node: ros2 launch mmtok_ros rsu.launch.py [namespace:=rsu2 rsu_id:=rsu2 ...].

Topic names are relative, so with ``namespace:=rsu2`` the node reads ``/rsu2/camera/image_raw``
and ``/rsu2/lidar/points`` and publishes ``/rsu2/mmtok/link_status`` and
``/rsu2/mmtok/handover``. ``neighbours:=rsu1,rsu3`` makes it hear those RSUs' link status
(``/rsu1/mmtok/link_status``...: their namespace is their id) and hand over to the best one.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


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
        DeclareLaunchArgument('target_rsu', default_value='rsu2',
                              description='hand-over target while no neighbour status is fresh'),
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
    rsu = Node(
        package='mmtok_ros',
        executable='rsu_node',
        name='rsu_node',
        namespace=LaunchConfiguration('namespace'),
        output='screen',
        parameters=[LaunchConfiguration('params_file'),
                    {'model_path': LaunchConfiguration('model_path'),
                     'device': LaunchConfiguration('device'),
                     'use_sim_time': LaunchConfiguration('use_sim_time'),
                     'rsu_id': LaunchConfiguration('rsu_id'),
                     'neighbours': LaunchConfiguration('neighbours'),
                     'target_rsu': LaunchConfiguration('target_rsu'),
                     'image_topic': LaunchConfiguration('image'),
                     'lidar_topic': LaunchConfiguration('points'),
                     'rssi_topics': [LaunchConfiguration('rssi_own'),
                                     LaunchConfiguration('rssi_neighbour')]}],
    )
    return LaunchDescription(args + [rsu])
