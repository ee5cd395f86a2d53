"""The prompt shapes every family's parity is checked on, placed relative to the image's size."""

from __future__ import annotations

import numpy as np

from service.runtime.prompts import Prompt


def prompts_for(size: tuple[int, int]) -> dict[str, Prompt]:
    """One point, points with negatives, a box, and a box with points, for an image of (rows, columns)."""
    rows, columns = size
    return {
        "one_point": Prompt(np.array([[columns * 0.4, rows * 0.55]]), np.array([1])),
        "points_with_negatives": Prompt(
            np.array([[columns * 0.3, rows * 0.3], [columns * 0.7, rows * 0.6], [columns * 0.5, rows * 0.9]]),
            np.array([1, 0, 1]),
        ),
        "box": Prompt(box=np.array([columns * 0.1, rows * 0.2, columns * 0.6, rows * 0.8])),
        "box_and_points": Prompt(
            np.array([[columns * 0.35, rows * 0.5], [columns * 0.2, rows * 0.25]]),
            np.array([1, 0]),
            box=np.array([columns * 0.15, rows * 0.1, columns * 0.9, rows * 0.95]),
        ),
    }
