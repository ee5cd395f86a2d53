"""Real photos with one object of known extent pasted in: the ground truth for "does the default model draw real
masks". The photos are scikit-image's bundled samples (astronaut, cat, coffee, rocket, ...); the objects a disk, an
ellipse or a rounded rectangle, filled with one colour and a little texture. The boxes given to the model are the
object's tight box grown by BOX_MARGIN pixels, as MedSAM's training jitters its boxes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True, eq=False)
class Composite:
    name: str
    rgb: np.ndarray  # (H, W, 3) uint8
    truth: np.ndarray  # (H, W) bool: the pasted object
    box: tuple[float, float, float, float]  # the box prompt: its tight box grown by BOX_MARGIN, x0, y0, x1, y1

    @property
    def png(self) -> bytes:
        import io

        buffer = io.BytesIO()
        Image.fromarray(self.rgb).save(buffer, format="PNG")
        return buffer.getvalue()


def _photo(name: str) -> np.ndarray:
    from skimage import data

    image = np.asarray(getattr(data, name)())
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def _ellipse(shape: tuple[int, int], center: tuple[float, float], radii: tuple[float, float]) -> np.ndarray:
    rows, columns = np.mgrid[0 : shape[0], 0 : shape[1]]
    return ((rows - center[0]) / radii[0]) ** 2 + ((columns - center[1]) / radii[1]) ** 2 <= 1.0


def _rounded_rectangle(shape: tuple[int, int], center: tuple[float, float], half: tuple[float, float]) -> np.ndarray:
    rows, columns = np.mgrid[0 : shape[0], 0 : shape[1]]
    radius = 0.35 * min(half)
    dy = np.maximum(np.abs(rows - center[0]) - (half[0] - radius), 0)
    dx = np.maximum(np.abs(columns - center[1]) - (half[1] - radius), 0)
    return dx**2 + dy**2 <= radius**2


def _paste(photo: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], seed: int) -> np.ndarray:
    texture = np.random.default_rng(seed).integers(-12, 13, photo.shape)
    filled = np.clip(np.array(colour)[None, None, :] + texture, 0, 255).astype(np.uint8)
    return np.where(mask[..., None], filled, photo)


BOX_MARGIN = 5


def _box(mask: np.ndarray) -> tuple[float, float, float, float]:
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    return (
        float(max(columns[0] - BOX_MARGIN, 0)),
        float(max(rows[0] - BOX_MARGIN, 0)),
        float(min(columns[-1] + BOX_MARGIN, width - 1)),
        float(min(rows[-1] + BOX_MARGIN, height - 1)),
    )


def composites() -> list[Composite]:
    """Eight photos, each with one object pasted in."""
    made = []
    cases = [
        ("astronaut", "disk", (0.55, 0.30), 0.16, (40, 200, 60)),
        ("chelsea", "rectangle", (0.40, 0.30), 0.18, (250, 240, 40)),
        ("coffee", "ellipse", (0.45, 0.65), 0.18, (30, 60, 220)),
        ("rocket", "disk", (0.35, 0.70), 0.14, (240, 60, 200)),
        ("camera", "rectangle", (0.60, 0.60), 0.15, (255, 255, 255)),
        ("retina", "ellipse", (0.30, 0.25), 0.15, (250, 250, 20)),
        ("hubble_deep_field", "disk", (0.60, 0.55), 0.20, (220, 220, 220)),
        ("coins", "rectangle", (0.50, 0.50), 0.20, (20, 20, 20)),
    ]
    for index, (photo_name, shape, (row, column), size, colour) in enumerate(cases):
        photo = _photo(photo_name)
        height, width = photo.shape[:2]
        if shape == "disk":
            radius = size * min(height, width)
            mask = _ellipse((height, width), (row * height, column * width), (radius, radius))
        elif shape == "ellipse":
            mask = _ellipse((height, width), (row * height, column * width), (size * height, 1.6 * size * width))
        else:
            mask = _rounded_rectangle((height, width), (row * height, column * width), (size * height, size * width))
        made.append(Composite(f"{photo_name}_{shape}", _paste(photo, mask, colour, index), mask, _box(mask)))
    return made
