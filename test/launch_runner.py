"""``ros2 launch PACKAGE FILE name:=value ...`` without ros2cli (which is not on PyPI).

What ``ros2 launch`` does with those arguments: find the file under the package's share
directory (ament index), include it with the arguments and run a ``launch.LaunchService``
until it ends or is interrupted; the exit status is the service's. Used by the launch tests
with a colcon workspace's ``install/setup.bash`` sourced, as a ROS user runs it.
"""
import os
import sys

from ament_index_python.packages import get_package_share_directory
from launch import LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource


def main(argv: list[str]) -> int:
    package, file_name, *launch_args = argv
    path = os.path.join(get_package_share_directory(package), 'launch', file_name)
    arguments = [tuple(a.split(':=', 1)) for a in launch_args]
    service = LaunchService(argv=launch_args)
    service.include_launch_description(IncludeLaunchDescription(
        PythonLaunchDescriptionSource(path), launch_arguments=arguments))
    return service.run()


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
