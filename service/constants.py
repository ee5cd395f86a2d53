"""Facts about SAM and the service that every module imports from here, so each lives in one place."""

from typing import Final

# The mask decoder's low-resolution output side (SAM's mask_input size).
LOW_RES_MASK_SIZE: Final = 256
# Logits above this are inside the mask (SAM's `mask_threshold`).
MASK_THRESHOLD: Final = 0.0
# Offset of the stability score (SAM's automatic mask generator default).
STABILITY_SCORE_OFFSET: Final = 1.0
