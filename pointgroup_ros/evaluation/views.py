"""A labelled scene as a robot's sensor would publish it: far from the frame's origin, or in a camera's frame.

The network learned on z-up rooms centred on their mean; a robot publishes in a map frame with its origin
anywhere, or in a camera's optical frame (REP 103: z forward, x right, y down). These views re-express a scene's
points so that evaluation and tests can check that the pipeline gives the same instances either way:

- room: the scene as stored (z up, centred);
- far: the same points 40 m from the frame's origin (a map or odom frame);
- optical: the points in the optical frame of a camera standing in the room, pitched down and turned, with
  the camera's pose on a z-up robot base (base_link <- camera_link <- camera_optical_frame, as a robot's
  /tf_static has it); the pipeline gets base_link <- optical frame as its gravity transform.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..transforms import OPTICAL_IN_CAMERA_LINK, matrix_from_pose, transform_points

VIEWS = ("room", "far", "optical")
FAR_OFFSET = np.array([40.0, 0.0, 0.0])  # metres
CAMERA_ON_BASE = np.array([0.10, 0.0, 1.30])  # camera_link on base_link: a head-height RGB-D camera
CAMERA_PITCH_DEG = 25.0  # looking down


@dataclass(frozen=True)
class CameraRig:
    """Where a camera stands in a scene: poses as 4x4 transforms (each maps child points into its parent)."""

    room_from_base: np.ndarray  # base_link in the scene's frame (the robot on the floor)
    base_from_camera: np.ndarray  # camera_link on base_link (static)
    camera_from_optical: np.ndarray  # camera_optical_frame on camera_link (static, REP 103)

    @property
    def base_from_optical(self) -> np.ndarray:
        """The gravity transform of a cloud in the optical frame, with base_link as the gravity frame."""
        return self.base_from_camera @ self.camera_from_optical

    @property
    def optical_from_room(self) -> np.ndarray:
        return np.linalg.inv(self.room_from_base @ self.base_from_optical)


def camera_rig(xyz: np.ndarray, seed: int) -> CameraRig:
    """A camera on a robot standing on the scene's floor, 1.5-2.5 m from its middle, turned to face it.

    Deterministic in seed. The robot's yaw is not a multiple of 90 degrees, so the scene's walls are not
    aligned with base_link's axes.
    """
    rng = np.random.default_rng(seed)
    floor = float(np.nanmin(xyz[:, 2]))
    bearing = rng.uniform(0, 2 * np.pi)
    distance = rng.uniform(1.5, 2.5)
    position = np.array([distance * np.cos(bearing), distance * np.sin(bearing), floor])
    yaw = bearing + np.pi + rng.uniform(-0.3, 0.3)  # facing the middle, roughly
    room_from_base = matrix_from_pose(position, (0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)))
    pitch = np.deg2rad(CAMERA_PITCH_DEG)  # positive about y tilts x (forward) down
    base_from_camera = matrix_from_pose(CAMERA_ON_BASE, (0.0, np.sin(pitch / 2), 0.0, np.cos(pitch / 2)))
    return CameraRig(room_from_base, base_from_camera, matrix_from_pose(np.zeros(3), OPTICAL_IN_CAMERA_LINK))


def view_points(xyz: np.ndarray, view: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """(points as the sensor publishes them, float32 (N, 3); the gravity transform to pass, or None)."""
    if view == "room":
        return np.asarray(xyz, np.float32), None
    if view == "far":
        return (np.asarray(xyz, np.float64) + FAR_OFFSET).astype(np.float32), None
    if view == "optical":
        rig = camera_rig(xyz, seed)
        return transform_points(rig.optical_from_room, np.asarray(xyz, np.float64)).astype(np.float32), \
            rig.base_from_optical
    raise ValueError(f"unknown view {view!r} (views: {', '.join(VIEWS)})")
