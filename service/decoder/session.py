"""What one Segment stream remembers between requests: the best mask of its last answer, per object."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.errors import InvalidArgument


class StreamSession:
    """The low-res logits of the best (highest-score) mask of each object of the stream's last good answer.

    Only answers without error replace it, so one bad click does not lose the mask being refined; it is
    tied to the image key of that answer, so a prior never crosses over to another image.
    """

    def __init__(self) -> None:
        self.image_key: str | None = None
        self._best_logits: list[np.ndarray] = []

    def remember(self, image_key: str, best_logits: Sequence[np.ndarray]) -> None:
        """Keep each object's best mask's (256, 256) low-res logits, as the family's predictor returns them."""
        self.image_key = image_key
        self._best_logits = [np.ascontiguousarray(logits)[None] for logits in best_logits]

    def previous_mask(self, image_key: str, index: int, field: str) -> np.ndarray:
        """(1, 256, 256) logits for the object at `index`; InvalidArgument naming `field` when there are none."""
        if self.image_key is None:
            raise InvalidArgument("asks for the previous mask, but this stream has answered nothing yet", field)
        if self.image_key != image_key:
            raise InvalidArgument(
                f"asks for the previous mask, but this stream's last answer was for {self.image_key!r}", field
            )
        if index >= len(self._best_logits):
            raise InvalidArgument(
                f"asks for the previous mask of object {index}, but the last answer had "
                f"{len(self._best_logits)} object(s)",
                field,
            )
        return self._best_logits[index]
