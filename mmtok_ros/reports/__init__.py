"""Reports: the files and tables people read (CSV, Fig. 5 plots, Markdown, acceptance checks).

ROS-free and import only the core; the commands, the benchmarks and the handover emulator node
call them. Nothing in the core imports them.
"""
