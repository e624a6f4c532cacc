"""Replay a testbed bag through the RSU node and emulate the handover (Fig. 5).

ros2 launch mmtok_ros replay.launch.py bag:=data/scenario_05 truth:=data/scenario_05.truth.json

The launch ends when the bag does; the emulator's results go to out_dir (default
./results/emulation under the directory ros2 launch runs in).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from mmtok_ros.ros.launch_signals import sigint_on_ctrl_c


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory('mmtok_ros')
    rsu_params = os.path.join(share, 'config', 'rsu.yaml')
    replay_params = os.path.join(share, 'config', 'replay.yaml')
    args = [
        DeclareLaunchArgument('bag', description='rosbag2 directory to play'),
        DeclareLaunchArgument('truth', default_value='',
                              description='truth sidecar for the oracle (optional)'),
        DeclareLaunchArgument('rate', default_value='1.0', description='playback speed'),
        DeclareLaunchArgument('loop', default_value='false', description='play in a loop'),
        DeclareLaunchArgument('model_path', default_value='',
                              description='model file (empty: the shipped model)'),
        DeclareLaunchArgument('device', default_value='cuda',
                              description='cpu, cuda or cuda:N (cuda falls back to cpu)'),
        # absolute, from the directory ros2 launch runs in (the emulator logs the path)
        DeclareLaunchArgument('out_dir',
                              default_value=os.path.join(os.getcwd(), 'results', 'emulation'),
                              description='where the emulator writes PNG, CSV, summary.json '
                                          '(relative: to the directory launch runs in)'),
    ]
    replay = Node(
        package='mmtok_ros',
        executable='bag_replay',
        name='bag_replay',
        output='screen',
        parameters=[replay_params,
                    {'bag': LaunchConfiguration('bag'),
                     'rate': LaunchConfiguration('rate'),
                     'loop': LaunchConfiguration('loop'),
                     # the node's subscriptions may match a moment after ours do:
                     # settle before the first (best-effort) message, as mmtok demo does
                     'wait_for_subscribers': 1, 'start_delay_s': 1.0}],
    )
    rsu = Node(
        package='mmtok_ros',
        executable='rsu_node',
        name='rsu_node',
        output='screen',
        parameters=[rsu_params,
                    {'model_path': LaunchConfiguration('model_path'),
                     'device': LaunchConfiguration('device'),
                     'use_sim_time': True,
                     'input_reliable': True}],  # bag_replay publishes reliable
        remappings=[('/camera/image_raw', '/camera/image_raw'),
                    ('/lidar/points', '/lidar/points')],
    )
    emulator = Node(
        package='mmtok_ros',
        executable='handover_emulator',
        name='handover_emulator',
        output='screen',
        parameters=[replay_params,
                    {'truth_path': LaunchConfiguration('truth'),
                     'out_dir': LaunchConfiguration('out_dir'),
                     'use_sim_time': True}],
    )
    # The bag has ended (bag_replay exits when done, unless loop:=true): shut the launch
    # down, which stops rsu_node and makes the emulator write its results.
    end_with_the_bag = RegisterEventHandler(OnProcessExit(
        target_action=replay,
        on_exit=[EmitEvent(event=Shutdown(reason='bag_replay finished the bag'))]))
    return LaunchDescription(args + [rsu, emulator, replay, end_with_the_bag,
                                     sigint_on_ctrl_c([rsu, emulator, replay])])
