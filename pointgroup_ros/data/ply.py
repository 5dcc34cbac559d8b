"""A small PLY reader/writer (numpy only): one element's scalar properties, ascii or binary.

Enough for ScanNet meshes (*_vh_clean_2.ply: binary vertex x y z red green blue alpha, then faces) and for
users' labelled clouds. Elements before the wanted one are skipped (binary ones must not have list
properties); elements after it are never read.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .scene import DataError

_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
          "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
          "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}
_NAMES = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint",
          "f4": "float", "f8": "double"}


def _parse_header(path: Path, raw: bytes) -> tuple[str, list[tuple[str, int, list[tuple[str, str | None, str]]]], int]:
    """Return (format, [(element, count, [(prop, dtype or None for lists, list count dtype)])], data offset)."""
    if not raw.startswith(b"ply"):
        raise DataError(f"{path}: not a PLY file (no 'ply' magic)")
    end = raw.find(b"end_header")
    if end < 0:
        raise DataError(f"{path}: PLY header has no end_header")
    nl = raw.find(b"\n", end)
    if nl < 0:
        raise DataError(f"{path}: PLY header is truncated")
    fmt = ""
    elements: list[tuple[str, int, list[tuple[str, str | None, str]]]] = []
    for line in raw[:end].decode("ascii", errors="replace").splitlines()[1:]:
        tok = line.split()
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        try:
            if tok[0] == "format":
                fmt = tok[1]
            elif tok[0] == "element":
                elements.append((tok[1], int(tok[2]), []))
            elif tok[0] == "property" and tok[1] == "list":
                elements[-1][2].append((tok[4], None, _TYPES[tok[2]]))
            elif tok[0] == "property":
                elements[-1][2].append((tok[2], _TYPES[tok[1]], ""))
            else:
                raise ValueError(tok[0])
        except (IndexError, KeyError, ValueError):
            raise DataError(f"{path}: malformed PLY header line {line!r}") from None
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise DataError(f"{path}: unsupported PLY format {fmt!r}")
    return fmt, elements, nl + 1


def read_ply(path: str | Path, element: str = "vertex") -> dict[str, np.ndarray]:
    """Read the scalar properties of one PLY element: {property name: (count,) array of its type}."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    raw = path.read_bytes()
    fmt, elements, pos = _parse_header(path, raw)
    ascii_lines: list[bytes] | None = raw[pos:].splitlines() if fmt == "ascii" else None
    line = 0
    for name, count, props in elements:
        if name != element:
            if ascii_lines is not None:
                line += count
            elif any(p[1] is None for p in props):
                raise DataError(f"{path}: cannot skip element {name!r} with list properties before {element!r}")
            else:
                pos += count * int(sum(np.dtype(p[1]).itemsize for p in props))  # type: ignore[arg-type]
            continue
        if any(p[1] is None for p in props):
            raise DataError(f"{path}: element {element!r} has list properties (unsupported)")
        if ascii_lines is not None:
            rows = ascii_lines[line:line + count]
            try:
                flat = np.array(b" ".join(rows).split(), dtype=np.float64)
                table = flat.reshape(count, len(props))
            except ValueError:
                raise DataError(f"{path}: malformed ascii PLY data in element {element!r}") from None
            return {p: table[:, i].astype(t) for i, (p, t, _) in enumerate(props)}  # type: ignore[arg-type]
        order = "<" if fmt == "binary_little_endian" else ">"
        dtype = np.dtype([(p, order + t) for p, t, _ in props])  # type: ignore[operator]
        if len(raw) < pos + count * dtype.itemsize:
            raise DataError(f"{path}: PLY file is truncated ({count} {element} rows announced)")
        table = np.frombuffer(raw, dtype=dtype, count=count, offset=pos)
        cols = {p: table[p] for p, _, _ in props}  # type: ignore[call-overload]
        return {p: c.astype(c.dtype.newbyteorder("=")) for p, c in cols.items()}
    raise DataError(f"{path}: PLY file has no {element!r} element")


def write_ply(path: str | Path, vertex: dict[str, np.ndarray], faces: np.ndarray | None = None,
              binary: bool = True, comments: tuple[str, ...] = ()) -> None:
    """Write a PLY with a vertex element of scalar properties ({name: (N,) array}) and optional triangles
    (int (F, 3) vertex indices). Binary little endian, or ascii; comments go into the header."""
    arrays = {k: np.asarray(v) for k, v in vertex.items()}
    n = len(next(iter(arrays.values()))) if arrays else 0
    for k, v in arrays.items():
        if v.shape != (n,) or v.dtype.str[1:] not in _NAMES:
            raise DataError(f"write_ply: property {k!r} must be a (N,) array of a PLY type, got {v.shape} {v.dtype}")
    head = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0"]
    head += [f"comment {c}" for c in comments]
    head.append(f"element vertex {n}")
    head += [f"property {_NAMES[v.dtype.str[1:]]} {k}" for k, v in arrays.items()]
    if faces is not None:
        head += [f"element face {len(faces)}", "property list uchar int vertex_indices"]
    head.append("end_header")
    with open(path, "wb") as f:
        f.write(("\n".join(head) + "\n").encode("ascii"))
        if binary:
            table = np.empty(n, dtype=[(k, "<" + v.dtype.str[1:]) for k, v in arrays.items()])
            for k, v in arrays.items():
                table[k] = v
            f.write(table.tobytes())
            if faces is not None:
                ft = np.empty(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
                ft["n"] = 3
                ft["v"] = faces
                f.write(ft.tobytes())
        else:
            for vals in zip(*(v.tolist() for v in arrays.values())):
                f.write((" ".join(str(x) for x in vals) + "\n").encode("ascii"))
            if faces is not None:
                for tri in np.asarray(faces):
                    f.write(("3 " + " ".join(str(int(i)) for i in tri) + "\n").encode("ascii"))
