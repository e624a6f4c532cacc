"""Run-time core of the RSU node (ROS-free): streaming inference and deadline control."""
