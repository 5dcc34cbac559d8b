# Two commands on a fresh Linux machine: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install install-ros clean bench gpu-report typecheck train-demo overfit-scannet

$(STAMP): setup.py setup.cfg constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The `ros` tests (test/ros/test_node_ros.py) run the node against ROS 2 Jazzy's rclpy and messages from PyPI, in
# .venv/ros: a venv that sees .venv's packages (test/ros/pypi_ros.py; ~2 min: wheels, then vision_msgs and our
# msg/ generated with cmake). Kept out of .venv, which may be used with a ROS 2 sourced from /opt/ros. Never fails:
# without the network it says why, and the `ros` tests are skipped with that reason.
ROS_VENV := $(VENV)/ros
ROS_PY := $(ROS_VENV)/bin/python
ROS_STAMP := $(ROS_VENV)/.ready
ROS_TEST_TIMEOUT_S := 900

$(ROS_STAMP): constraints.txt test/ros/pypi_ros.py pointgroup_ros/ros/typestore.py msg/Instance.msg msg/InstanceArray.msg | $(STAMP)
	$(PY) test/ros/pypi_ros.py setup --venv $(ROS_VENV)

install-ros: $(ROS_STAMP)

demo: $(STAMP)
	$(VENV)/bin/pointgroup-ros demo --out demo_out

test: $(STAMP) $(ROS_STAMP)
	$(PY) -m pytest -m 'not ros'
	if [ -f $(ROS_STAMP) ]; then timeout -k 10 $(ROS_TEST_TIMEOUT_S) $(ROS_PY) -m pytest -m ros test/ros; \
	else $(PY) -m pytest -m ros test/ros; fi

bench: $(STAMP)
	$(VENV)/bin/pointgroup-ros bench

# On a machine with an NVIDIA GPU (CUDA torch and CuPy installed first, README "Installing for a GPU"): the `gpu`
# tests, the grouping and whole-frame benchmarks and the goals of issue 12, in gpu_report/report.md and report.json
# (a few minutes on an H200). Without a GPU it says so and fails.
gpu-report: $(STAMP)
	$(VENV)/bin/pointgroup-ros gpu-report --out gpu_report

# Long runs (not part of `make test`); BENCHMARKS.md records what they gave and on which machine.
# train-demo: stage 1 trains on whole generated rooms (runs/demo, ~2 h on the 2-core CI box); stage 2 fine-tunes
# that model on the same rooms plus 4 camera views of each, as a robot's depth camera sees them (runs/demo_camera,
# ~1.2 h); the result ships, and is evaluated on held-out rooms and held-out camera sequences.
DEMO_NOTE := synthetic-data demo model: trained on generated rooms and camera views of them (pointgroup_ros.data.synthetic, pointgroup_ros.data.camera); classes floor, wall, chair, table, cabinet, sofa, bin
CAMERA_TUNING := --epochs 16 --set train.camera_views=4 --set train.prepare_epochs=0 --set 'train.lr_steps=[12]'
train-demo: $(STAMP)
	OMP_NUM_THREADS=1 $(VENV)/bin/pointgroup-ros train --config synthetic --data synthetic --scenes 96 --out runs/demo --threads 1
	OMP_NUM_THREADS=1 $(VENV)/bin/pointgroup-ros train --config synthetic --data synthetic --scenes 96 --out runs/demo_camera --threads 1 --init runs/demo/final.pth $(CAMERA_TUNING)
	$(VENV)/bin/pointgroup-ros convert-weights runs/demo_camera/final.pth pointgroup_ros/weights/demo_synthetic.pth --half --force --description "$(DEMO_NOTE)"
	$(VENV)/bin/pointgroup-ros eval --scenes 16 --sets ablation --json runs/demo_camera/held_out.json
	$(VENV)/bin/pointgroup-ros eval --sequences 3 --frames 40 --sets ablation --json runs/demo_camera/sequences.json

REALDATA ?= ../shared/realdata
overfit-scannet: $(STAMP)
	$(VENV)/bin/pointgroup-ros prepare scannet --src $(REALDATA)/scannet --scenes scene0000_00 --out runs/overfit/prep
	mkdir -p runs/overfit/data/train runs/overfit/data/val
	ln -sf ../../prep/scene0000_00.npz runs/overfit/data/train/
	ln -sf ../../prep/scene0000_00.npz runs/overfit/data/val/
	OMP_NUM_THREADS=1 $(VENV)/bin/pointgroup-ros train --config scannet --data runs/overfit/data --out runs/overfit/run \
	  --no-augment --threads 1 --epochs 760 --eval-every 40 \
	  --set train.prepare_epochs=120 --set train.batch_size=1 --set train.checkpoint_every=40

typecheck: $(STAMP)
	MYPYPATH=test/ros $(PY) -m mypy --config-file mypy.ini pointgroup_ros/ros pointgroup_ros/cloud_io.py \
	  pointgroup_ros/tools/run.py test/ros/test_node_ros.py

clean:
	rm -rf $(VENV) build *.egg-info demo_out
