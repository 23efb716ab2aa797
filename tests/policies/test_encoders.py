"""Image encoder pieces on hand-made inputs: the spatial softmax reads out where a blob is."""

from __future__ import annotations

import torch
from robot_il.policies.encoders import SpatialSoftmax


def test_spatial_softmax_returns_the_blob_position_and_the_centre_of_a_flat_map() -> None:
    """Channel 0 holds one sharp peak at row 2, column 10 of a 9x13 map: its keypoint is that
    pixel's coordinates on the [-1, 1] grid (x along columns, y along rows). Channel 1 is flat:
    its softmax is uniform and the keypoint is the map's centre."""
    maps = torch.zeros(1, 2, 9, 13)
    maps[0, 0, 2, 10] = 50.0
    keypoints = SpatialSoftmax()(maps)
    x0, x1, y0, y1 = keypoints[0].tolist()  # layout: all x, then all y
    assert abs(x0 - (-1 + 2 * 10 / 12)) < 1e-4 and abs(y0 - (-1 + 2 * 2 / 8)) < 1e-4
    assert abs(x1) < 1e-6 and abs(y1) < 1e-6


def test_spatial_softmax_averages_two_equal_peaks() -> None:
    """Two equal peaks share the softmax's mass: the keypoint lies midway between them, which
    is why a keypoint channel must single out one object."""
    maps = torch.zeros(1, 1, 5, 5)
    maps[0, 0, 0, 0] = maps[0, 0, 4, 2] = 40.0
    x, y = SpatialSoftmax()(maps)[0].tolist()
    assert abs(x - (-1 + 0.0) / 2) < 1e-4 and abs(y - 0.0) < 1e-4
