"""Pictures of masks over their image, for people: the best mask, every mask side by side with scores, or all the
masks of segment-everything in distinct colours."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw

_COLORS = ((30, 144, 255), (255, 99, 71), (50, 205, 50))
_ALPHA = 0.5


def tint(rgb: np.ndarray, mask: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """`rgb` with the mask's pixels blended toward `color` and its outline drawn solid."""
    out = rgb.astype(np.float32)
    out[mask] = (1 - _ALPHA) * out[mask] + _ALPHA * np.array(color, np.float32)
    edge = mask & ~(np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1) & np.roll(mask, -1, 1))
    out[edge] = color
    return out.astype(np.uint8)


def draw_points(image: Image.Image, points: list[tuple[float, float, int]], box: tuple[float, ...] | None) -> None:
    draw = ImageDraw.Draw(image)
    radius = max(3, round(min(image.size) / 100))
    for x, y, label in points:
        fill = (0, 200, 0) if label == 1 else (220, 0, 0)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill, outline=(255, 255, 255))
    if box is not None:
        draw.rectangle(box, outline=(255, 215, 0), width=max(2, radius // 2))


def overlay_best(
    rgb: np.ndarray,
    masks: list[np.ndarray],
    scores: list[float],
    points: list[tuple[float, float, int]],
    box: tuple[float, ...] | None,
) -> Image.Image:
    """The image with its highest-scoring mask tinted, plus the prompt drawn on top."""
    best = int(np.argmax(scores))
    image = Image.fromarray(tint(rgb, masks[best], _COLORS[0]))
    draw_points(image, points, box)
    return image


def overlay_all(
    rgb: np.ndarray,
    masks: list[np.ndarray],
    scores: list[float],
    points: list[tuple[float, float, int]],
    box: tuple[float, ...] | None,
) -> Image.Image:
    """One panel per mask, left to right in the model's order, each captioned with its score."""
    height, width = rgb.shape[:2]
    sheet = Image.new("RGB", (width * len(masks), height))
    for index, (mask, score) in enumerate(zip(masks, scores, strict=True)):
        panel = Image.fromarray(tint(rgb, mask, _COLORS[index % len(_COLORS)]))
        draw_points(panel, points, box)
        ImageDraw.Draw(panel).text(
            (8, 8), f"mask {index}: score {score:.3f}", fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0)
        )
        sheet.paste(panel, (index * width, 0))
    return sheet


def distinct_color(index: int) -> tuple[int, int, int]:
    """The `index`-th of a sequence of saturated colours, each far in hue from the ones just before it."""
    red, green, blue = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.85, 0.95)
    return (round(red * 255), round(green * 255), round(blue * 255))


def overlay_everything(rgb: np.ndarray, masks: list[np.ndarray]) -> Image.Image:
    """Every mask tinted in its own colour, the largest first so that smaller ones stay visible on top."""
    out = rgb
    for index in sorted(range(len(masks)), key=lambda index: -int(masks[index].sum())):
        out = tint(out, masks[index], distinct_color(index))
    return Image.fromarray(out)
