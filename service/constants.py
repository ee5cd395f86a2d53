"""Facts about SAM and the service that every module imports from here, so each lives in one place."""

from typing import Final

# The image encoder's square input side, in pixels (SAM's `image_encoder.img_size`).
IMAGE_INPUT_SIZE: Final = 1024
# The mask decoder's low-resolution output side (SAM's mask_input size).
LOW_RES_MASK_SIZE: Final = 256
# One embedding: channels x rows x columns (64 = 1024 / the ViT patch size 16).
EMBEDDING_SHAPE: Final = (256, 64, 64)
# Pixel normalisation of the reference builder (`segment_anything.build_sam._build_sam`), RGB order.
PIXEL_MEAN: Final = (123.675, 116.28, 103.53)
PIXEL_STD: Final = (58.395, 57.12, 57.375)
# Logits above this are inside the mask (SAM's `mask_threshold`).
MASK_THRESHOLD: Final = 0.0
# Offset of the stability score (SAM's automatic mask generator default).
STABILITY_SCORE_OFFSET: Final = 1.0
