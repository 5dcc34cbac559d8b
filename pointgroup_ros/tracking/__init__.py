"""Persistent instance ids across frames: a ROS-free tracker by voxel overlap in a fixed frame (tracker.py)."""
from __future__ import annotations

from .tracker import Track, Tracker, TrackerConfig, TrackingResult

__all__ = ["Track", "Tracker", "TrackerConfig", "TrackingResult"]
