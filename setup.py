import os
from glob import glob

from setuptools import find_packages, setup

package_name = 'mmtok_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        (os.path.join('share', package_name, 'launch'), glob('launch/*.launch.py')),
        (os.path.join('share', package_name, 'config'),
         glob('config/*.yaml') + glob('config/*.xml')),
        (os.path.join('share', package_name, 'models'), glob('models/*')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='mmtok_ros maintainers',
    maintainer_email='mmtok-ros@example.org',
    description='Token-routed multi-modal transformer for proactive mmWave handover on a road-side unit.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'mmtok = mmtok_ros.cli:main',
            'rsu_node = mmtok_ros.ros.rsu_node:main',
            'rsu_lifecycle_node = mmtok_ros.ros.rsu_lifecycle_node:main',
            'bag_replay = mmtok_ros.ros.bag_replay:main',
            'handover_emulator = mmtok_ros.ros.handover_emulator:main',
        ],
    },
)
