"""Held-out camera sequences as evaluation scenes: every frame of a sequence, as the robot's camera saw it.

Each frame is one scene for the ScanNet rules (per-frame AP): its valid pixels in the camera's optical frame,
the ground-truth class and instance of each, and the camera's pose on the z-up robot base as the gravity
transform, exactly what the node gets with `gravity_frame:=base_link`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from ..data.camera import CameraConfig, Sequence, generate_sequence


@dataclass
class SensorFrame:
    """A labelled cloud in its sensor's frame, with the transform that makes it z-up."""

    name: str
    xyz: np.ndarray  # float32 (N, 3), optical frame, valid points only
    rgb: np.ndarray  # uint8 (N, 3)
    semantic: np.ndarray  # int64 (N,)
    instance: np.ndarray  # int64 (N,), -100 for stuff
    gravity_transform: np.ndarray  # (4, 4): base_link <- optical frame


def camera_sequences(seeds: range | list[int], frames: int, config: CameraConfig | None = None,
                     on_frame: Callable[[int], None] | None = None) -> Iterator[Sequence]:
    """The held-out camera sequences of `seeds`, generated one at a time (a whole Sequence each: poses,
    stamps, organized frames), for evaluations that need the frames in order (tracking)."""
    for seed in seeds:
        yield generate_sequence(seed, frames=frames, config=config, on_frame=on_frame)


def sequence_frames(seeds: range | list[int], frames: int, config: CameraConfig | None = None,
                    on_frame: Callable[[int], None] | None = None) -> Iterator[SensorFrame]:
    """The frames of the camera sequences of `seeds` (held-out sequence rooms), one SensorFrame each."""
    for seq in camera_sequences(seeds, frames, config, on_frame):
        for i, frame in enumerate(seq.frames):
            xyz, rgb, semantic, instance = frame.cloud(organized=False)
            yield SensorFrame(f"{seq.name}_{i:04d}", xyz.astype(np.float32), rgb, semantic.astype(np.int64),
                              instance.astype(np.int64), seq.base_from_optical)
