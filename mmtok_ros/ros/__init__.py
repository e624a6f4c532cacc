"""The thin ROS 2 layer: nodes that own parameters, QoS and topics and call the core."""
