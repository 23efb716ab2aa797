"""Coarser copies of the Menagerie visual meshes, so offscreen rendering stays fast.

The Menagerie UR5e and 2F-85 meshes hold about 178k triangles per arm; both engines render on
the CPU here, where drawing them costs far more than the few pixels of a 96x96 camera can show
(MuJoCo: about 6x the frame time of the coarse copies). Vertex clustering (snap every vertex to
a grid of ``cell`` metres, merge each cell's vertices into their mean, drop the triangles that
collapse) keeps the shape to within a cell and leaves about 10k triangles. The results are
cached as OBJ files (metres, no normals) under ``$ROBOT_IL_CACHE`` (default
``~/.cache/robot_il``), keyed by the source file and settings, written atomically so parallel
processes can share them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

DEFAULT_CELL = 0.008
"""Grid size (m) of the vertex clustering: under a pixel of a 96x96 camera a metre away
(about 12 mm at 60 deg), and still clean in 320-pixel close-ups."""


def cache_dir() -> Path:
    """Where simplified meshes are kept."""
    root = os.environ.get("ROBOT_IL_CACHE") or Path.home() / ".cache" / "robot_il"
    return Path(root) / "meshes"


def load_mesh(path: Path, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) in metres (times ``scale``) and triangles (F, 3) of an OBJ or binary STL."""
    if path.suffix.lower() == ".stl":
        vertices, faces = _load_binary_stl(path)
    else:
        vertices, faces = _load_obj(path)
    return vertices * scale, faces


def _load_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    vertex_rows, faces = [], []
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            vertex_rows.append(line[2:])
        elif line.startswith("f "):
            corners = [int(token.split("/")[0]) for token in line[2:].split()]
            faces += [(corners[0], corners[k], corners[k + 1]) for k in range(1, len(corners) - 1)]
    vertices = np.array(" ".join(vertex_rows).split(), dtype=np.float64).reshape(-1, 3)
    faces = np.array(faces, dtype=np.int64)
    faces = np.where(faces > 0, faces - 1, faces + len(vertices))  # OBJ: 1-based or negative
    return vertices, faces


def _load_binary_stl(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = path.read_bytes()
    count = int(np.frombuffer(data, dtype="<u4", count=1, offset=80)[0])
    record = np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attribute", "<u2")])
    triangles = np.frombuffer(data, dtype=record, count=count, offset=84)["corners"]
    vertices = triangles.reshape(-1, 3).astype(np.float64)
    return vertices, np.arange(len(vertices)).reshape(-1, 3)


def cluster_vertices(
    vertices: np.ndarray, faces: np.ndarray, cell: float
) -> tuple[np.ndarray, np.ndarray]:
    """Merge the vertices in each ``cell``-sized grid box; drop collapsed and repeated
    triangles and unused vertices."""
    keys = np.floor(vertices / cell).astype(np.int64)
    _, cluster, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    cluster = cluster.reshape(-1)
    merged = np.zeros((len(counts), 3))
    np.add.at(merged, cluster, vertices)
    merged /= counts[:, None]
    triangles = cluster[faces]
    keep = (
        (triangles[:, 0] != triangles[:, 1])
        & (triangles[:, 1] != triangles[:, 2])
        & (triangles[:, 0] != triangles[:, 2])
    )
    triangles = triangles[keep]
    _, first = np.unique(np.sort(triangles, axis=1), axis=0, return_index=True)
    triangles = triangles[np.sort(first)]
    used, compact = np.unique(triangles, return_inverse=True)
    return merged[used], compact.reshape(-1, 3)


def simplified_mesh(path: Path, scale: float = 1.0, cell: float = DEFAULT_CELL) -> Path:
    """Path of a cached, vertex-clustered OBJ copy (metres) of the mesh file ``path``."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{scale!r}|{cell!r}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    target = cache_dir() / f"{path.stem}-{digest}.obj"
    if target.is_file():
        return target
    vertices, faces = cluster_vertices(*load_mesh(path, scale), cell)
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.part")
    partial.write_text("\n".join(lines) + "\n")
    partial.replace(target)
    return target
