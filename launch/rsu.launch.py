"""The RSU inference node alone: ros2 launch mmtok_ros rsu.launch.py [model_path:=...]."""
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
        DeclareLaunchArgument('model_path', default_value='',
                              description='model file (empty: the shipped model)'),
        DeclareLaunchArgument('device', default_value='cuda',
                              description='cpu, cuda or cuda:N (cuda falls back to cpu)'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='follow /clock (bag replay)'),
        DeclareLaunchArgument('image', default_value='/camera/image_raw',
                              description='camera topic (sensor_msgs/Image)'),
        DeclareLaunchArgument('points', default_value='/lidar/points',
                              description='LiDAR topic (sensor_msgs/PointCloud2)'),
        DeclareLaunchArgument('rssi_rsu1', default_value='/rssi/rsu1',
                              description='RSSI of RSU 1 (sensor_msgs/Temperature, dBm)'),
        DeclareLaunchArgument('rssi_rsu2', default_value='/rssi/rsu2',
                              description='RSSI of RSU 2 (sensor_msgs/Temperature, dBm)'),
    ]
    rsu = Node(
        package='mmtok_ros',
        executable='rsu_node',
        name='rsu_node',
        output='screen',
        parameters=[LaunchConfiguration('params_file'),
                    {'model_path': LaunchConfiguration('model_path'),
                     'device': LaunchConfiguration('device'),
                     'use_sim_time': LaunchConfiguration('use_sim_time')}],
        remappings=[('/camera/image_raw', LaunchConfiguration('image')),
                    ('/lidar/points', LaunchConfiguration('points')),
                    ('/rssi/rsu1', LaunchConfiguration('rssi_rsu1')),
                    ('/rssi/rsu2', LaunchConfiguration('rssi_rsu2'))],
    )
    return LaunchDescription(args + [rsu])
