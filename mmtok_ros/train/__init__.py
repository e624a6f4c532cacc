"""Training and evaluation (ROS-free): datasets of windows, the Eq. 19 trainer, cross-validation."""
