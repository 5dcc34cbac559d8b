"""pip / setuptools build of pointgroup_ros (the Python package, its kernels and presets).

colcon builds the ROS 2 package from package.xml and CMakeLists.txt; pip installs the same Python code
for the ROS-free uses (offline runner, training, evaluation, tests). kernels/ and config/ sit at the top
level of the repository (ROS layout), as does msg/; a wheel installs them as pointgroup_ros/_data/<name>
and pointgroup_ros.resources.data_dir() finds them there or, in a checkout or editable install, beside
the package.
"""
from setuptools import find_packages, setup

packages = find_packages(include=["pointgroup_ros", "pointgroup_ros.*"])
DATA_DIRS = {"kernels": ["*.cu", "*.cuh", "*.h", "host/*"], "config": ["*.yaml", "*.rviz"], "msg": ["*.msg"]}
setup(
    packages=packages + [f"pointgroup_ros._data.{name}" for name in DATA_DIRS],
    package_dir={f"pointgroup_ros._data.{name}": name for name in DATA_DIRS},
    package_data={**{f"pointgroup_ros._data.{name}": patterns for name, patterns in DATA_DIRS.items()},
                  "pointgroup_ros": ["weights/*.pth", "weights/*.md"]},
)
