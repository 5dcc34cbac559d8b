"""Message kits: one interface to build ROS 2 messages with rclpy's generated classes or rosbags' classes.

The message builders (cloud.py, messages.py) never import a message module; they call kit.make('pkg/msg/Type',
field=value, ...) and the kit's helpers for array fields, so the same code builds real rclpy messages on a
robot and rosbags messages in the offline runner and in tests. Fields not given take their defaults.
"""
from __future__ import annotations

import array
import importlib
from typing import Any, Protocol

import numpy as np


class MessageKit(Protocol):
    """What the message builders need from a message backend."""

    def make(self, typename: str, **fields: Any) -> Any:
        """A message of type 'pkg/msg/Type' with the given fields; the others take their defaults."""
        ...

    def uint8_seq(self, data: np.ndarray) -> Any:
        """Value for a uint8[] field (e.g. PointCloud2.data) from a contiguous uint8 (K,) array."""
        ...

    def uint32_seq(self, values: np.ndarray) -> Any:
        """Value for a uint32[] field from an integer (K,) array."""
        ...

    def float64_array(self, values: np.ndarray) -> Any:
        """Value for a fixed-size float64[n] field (e.g. a covariance) from a float (n,) array."""
        ...

    def byte(self, value: int) -> Any:
        """Value for a 'byte' field (e.g. DiagnosticStatus.level)."""
        ...


class RclpyKit:
    """Builds rclpy messages (the generated Python classes of a sourced ROS 2 workspace).

    uint8[] / uint32[] fields are given as array.array: rclpy's setters take those as they are, whereas
    bytes or lists are checked element by element (seconds for a large cloud).
    """

    def __init__(self) -> None:
        self._classes: dict[str, Any] = {}

    def cls(self, typename: str) -> Any:
        cls = self._classes.get(typename)
        if cls is None:
            package, kind, name = typename.split("/")
            cls = getattr(importlib.import_module(f"{package}.{kind}"), name)
            self._classes[typename] = cls
        return cls

    def make(self, typename: str, **fields: Any) -> Any:
        return self.cls(typename)(**fields)

    def uint8_seq(self, data: np.ndarray) -> Any:
        out = array.array("B")
        out.frombytes(np.ascontiguousarray(data, np.uint8).reshape(-1).data)
        return out

    def uint32_seq(self, values: np.ndarray) -> Any:
        out = array.array("I")  # rosidl_generator_py stores uint32[] as array.array('I')
        if out.itemsize != 4:  # pragma: no cover - 'I' is 4 bytes on every platform ROS 2 supports
            return [int(v) for v in values]
        out.frombytes(np.ascontiguousarray(values, np.uint32).tobytes())
        return out

    def float64_array(self, values: np.ndarray) -> Any:
        return np.ascontiguousarray(values, np.float64)

    def byte(self, value: int) -> Any:
        return bytes([value])  # rosidl_generator_py represents 'byte' as bytes of length 1


class RosbagsKit:
    """Builds rosbags messages from a typestore (see typestore.py); numpy arrays for primitive arrays."""

    def __init__(self, typestore: Any) -> None:
        self.typestore = typestore
        self._types: dict[str, tuple[Any, list[tuple[str, Any]], frozenset[str]]] = {}

    def _lookup(self, typename: str) -> tuple[Any, list[tuple[str, Any]], frozenset[str]]:
        entry = self._types.get(typename)
        if entry is None:  # typestore.fielddefs is rebuilt on each access: look each type up once
            try:
                cls = self.typestore.types[typename]
                fielddefs = list(self.typestore.fielddefs[typename][1])
            except KeyError:
                raise KeyError(f"message type {typename} is not in this typestore") from None
            entry = (cls, fielddefs, frozenset(name for name, _ in fielddefs))
            self._types[typename] = entry
        return entry

    def make(self, typename: str, **fields: Any) -> Any:
        cls, fielddefs, names = self._lookup(typename)
        if not names.issuperset(fields):
            raise TypeError(f"{typename} has no field(s) {', '.join(sorted(set(fields) - names))}")
        if len(fields) == len(names):
            return cls(**fields)
        values = {name: fields[name] if name in fields else self._default(desc) for name, desc in fielddefs}
        return cls(**values)

    def _default(self, desc: tuple[Any, Any]) -> Any:
        from rosbags.interfaces import Nodetype  # RosbagsKit only: rclpy users need not install rosbags

        kind, detail = desc
        if kind == Nodetype.BASE:
            return _base_default(detail[0])
        if kind == Nodetype.NAME:
            return self.make(detail)
        sub, size = detail
        length = size if kind == Nodetype.ARRAY else 0
        if sub[0] == Nodetype.BASE:
            if sub[1][0] == "string":
                return [""] * length
            return np.zeros(length, _NUMPY_BASE.get(sub[1][0], sub[1][0]))
        return [self.make(sub[1]) for _ in range(length)]

    def uint8_seq(self, data: np.ndarray) -> Any:
        return np.ascontiguousarray(data, np.uint8).reshape(-1)

    def uint32_seq(self, values: np.ndarray) -> Any:
        return np.ascontiguousarray(values, np.uint32).reshape(-1)

    def float64_array(self, values: np.ndarray) -> Any:
        return np.ascontiguousarray(values, np.float64).reshape(-1)

    def byte(self, value: int) -> Any:
        return int(value)


_NUMPY_BASE = {"char": "uint8", "byte": "uint8", "octet": "uint8"}


def _base_default(base: str) -> Any:
    if base == "string":
        return ""
    if base == "bool":
        return False
    if base.startswith("float"):
        return 0.0
    return 0
