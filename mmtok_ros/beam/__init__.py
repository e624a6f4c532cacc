"""mmWave beam prediction (Section II, Eqs. 1-7; Tables II-V): system model, synthetic scenes,
the DeepSense 6G loader and the tables. ROS-free, like the rest of the core."""
