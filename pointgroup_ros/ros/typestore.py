"""rosbags typestores for ROS 2 Humble and Jazzy with vision_msgs and this package's messages registered.

rosbags ships sensor_msgs, visualization_msgs, diagnostic_msgs, ... but not vision_msgs; the definitions of
the vision_msgs types used here are written below (vision_msgs 4.1.x, the version in Humble and Jazzy;
the same fields since vision_msgs 3.0). This package's own types are read from msg/ (resources.data_dir).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..resources import data_dir

DISTROS = ("humble", "jazzy")
PACKAGE = "pointgroup_ros"

# vision_msgs 4.1.x field layouts (comments and constants omitted: they do not change the wire format).
VISION_MSGS: dict[str, str] = {
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose":
        "vision_msgs/ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n",
    "vision_msgs/msg/BoundingBox3D": "geometry_msgs/Pose center\ngeometry_msgs/Vector3 size\n",
    "vision_msgs/msg/Detection3D":
        "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
        "vision_msgs/BoundingBox3D bbox\nstring id\n",
    "vision_msgs/msg/Detection3DArray": "std_msgs/Header header\nvision_msgs/Detection3D[] detections\n",
}

# This package's interfaces (msg/<Name>.msg).
OWN_MSGS = ("Instance", "InstanceArray")

# Types the node and the runner write (topic suffix -> type).
OUTPUT_TYPES: dict[str, str] = {
    "labeled_points": "sensor_msgs/msg/PointCloud2",
    "detections": "vision_msgs/msg/Detection3DArray",
    "markers": "visualization_msgs/msg/MarkerArray",
    "instances": f"{PACKAGE}/msg/InstanceArray",
}


def own_msg_texts() -> dict[str, str]:
    """'pointgroup_ros/msg/Name' -> .msg text, read from the shipped msg/ folder."""
    folder = data_dir("msg")
    return {f"{PACKAGE}/msg/{name}": (folder / f"{name}.msg").read_text() for name in OWN_MSGS}


def make_typestore(distro: str = "humble") -> Any:
    """A new rosbags Typestore of ROS 2 `distro` ('humble' or 'jazzy') with vision_msgs and our messages."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    stores = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}
    if distro not in stores:
        raise ValueError(f"distro must be one of {', '.join(DISTROS)}, got {distro!r}")
    store = get_typestore(stores[distro])
    types: dict[str, Any] = {}
    for name, text in {**VISION_MSGS, **own_msg_texts()}.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


@lru_cache(maxsize=None)
def typestore(distro: str = "humble") -> Any:
    """Shared, cached make_typestore(distro). Do not register more types in it: use make_typestore for that."""
    return make_typestore(distro)
