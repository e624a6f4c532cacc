# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# DDS must stay on this machine (see README, "DDS stays local").
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST

# The typed interface package mmtok_msgs is built with colcon into the venv's prefix, beside the
# ROS wheels' own share/, lib/ and include/ (an ament prefix): the Python package lands in the
# venv's site-packages and its libraries in $(VENV)/lib, which the wheels' bootstrap (a .pth
# that re-executes Python with LD_LIBRARY_PATH) already searches; so `python` and the console
# scripts import mmtok_msgs with no setup.bash. Rebuilt only when its sources change.
MSGS_STAMP := $(VENV)/.mmtok_msgs
MSGS_SRC := mmtok_msgs/package.xml mmtok_msgs/CMakeLists.txt $(wildcard mmtok_msgs/msg/*.msg)
VENV_PREFIX = $(abspath $(VENV))
# colcon gets a venv of its own: colcon-core pins setuptools and brings pytest plugins, which
# must not change the venv the package and its tests run in.
COLCON_VENV := build/colcon-venv
COLCON_REQ := colcon-common-extensions==0.3.0 colcon-core==0.21.3

.PHONY: venv msgs test demo bench flops clean

venv: $(STAMP) $(MSGS_STAMP)

msgs: $(MSGS_STAMP)

$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The wheels' exported CMake files name their build container's Python and NumPy include
# directories; tools/fix_ros_wheel_cmake.py rewrites them to this interpreter's (idempotent).
$(MSGS_STAMP): $(STAMP) requirements-msgs.txt tools/fix_ros_wheel_cmake.py $(MSGS_SRC)
	$(PY) -m pip install --quiet -r requirements-msgs.txt
	$(PY) tools/fix_ros_wheel_cmake.py $(VENV_PREFIX)
	test -x $(COLCON_VENV)/bin/colcon || { $(PYTHON) -m venv $(COLCON_VENV) && \
	  $(COLCON_VENV)/bin/pip install --quiet $(COLCON_REQ); }
	PATH="$(VENV_PREFIX)/bin:$$PATH" CMAKE_PREFIX_PATH="$(VENV_PREFIX)" \
	AMENT_PREFIX_PATH="$(VENV_PREFIX)" $(COLCON_VENV)/bin/colcon --log-base build/msgs/log build \
	  --base-paths mmtok_msgs --build-base build/msgs --install-base $(VENV_PREFIX) \
	  --merge-install \
	  --cmake-args -DPython3_EXECUTABLE=$(VENV_PREFIX)/bin/python -DBUILD_TESTING=OFF
	$(PY) -c 'from mmtok_msgs.msg import HandoverTrigger, LinkStatus'
	touch $(MSGS_STAMP)

test: $(STAMP) $(MSGS_STAMP)
	$(PY) -m pytest -q test

demo: $(STAMP) $(MSGS_STAMP)
	$(VENV)/bin/mmtok demo

clean:
	rm -rf $(VENV) build *.egg-info results
