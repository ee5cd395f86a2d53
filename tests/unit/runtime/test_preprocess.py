"""Image decoding and the encoder input: modes, EXIF, limits, and the reference's resize and padding."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps
from segment_anything.utils.transforms import ResizeLongestSide

from service.errors import InvalidArgument, ResourceExhausted
from service.image_info import ImageLimits
from service.runtime.families.catalog import get_arch
from service.runtime.image_file import decode_image
from service.runtime.preprocess import input_size_of, prepare_encoder_input
from tests.support.images import encode, exif_rotated_jpeg, png_bytes, sample_image_files, smooth_rgb


def test_exif_orientation_is_applied() -> None:
    jpeg = exif_rotated_jpeg(smooth_rgb(300, 450, seed=8), orientation=6)
    stored = Image.open(io.BytesIO(jpeg))
    assert stored.size == (450, 300)
    decoded = decode_image(jpeg)
    assert decoded.shape == (450, 300, 3)
    assert np.array_equal(decoded, np.asarray(ImageOps.exif_transpose(stored).convert("RGB")))


def test_grayscale_becomes_three_equal_channels() -> None:
    decoded = decode_image(sample_image_files()["grayscale_png"])
    assert np.array_equal(decoded[..., 0], decoded[..., 1]) and np.array_equal(decoded[..., 1], decoded[..., 2])


def test_sixteen_bit_keeps_its_range() -> None:
    values = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    decoded = decode_image(encode(Image.fromarray(values), "PNG"))
    assert decoded[0, :, 0].tolist() == [0, 1, 255, 128]


def test_rgba_drops_alpha() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[..., 3] = 10
    assert (decode_image(encode(Image.fromarray(rgba), "PNG")) == 200).all()


@pytest.mark.parametrize("name", sorted(sample_image_files()))
def test_every_sample_decodes_to_rgb(name: str) -> None:
    decoded = decode_image(sample_image_files()[name])
    assert decoded.dtype == np.uint8 and decoded.ndim == 3 and decoded.shape[2] == 3


@pytest.mark.parametrize(
    ("image_bytes", "error", "message"),
    [
        (b"", InvalidArgument, "empty"),
        (b"this is plain text, not a picture", InvalidArgument, "not an image format"),
        (png_bytes(smooth_rgb(64, 64, 0))[:200], InvalidArgument, "could not be decoded"),
        (b"\x00" * 2048, InvalidArgument, "not an image format"),
    ],
)
def test_bad_images_are_invalid_argument(image_bytes: bytes, error: type, message: str) -> None:
    with pytest.raises(error, match=message) as raised:
        decode_image(image_bytes)
    assert raised.value.field == "image"


def test_too_many_bytes_is_resource_exhausted() -> None:
    with pytest.raises(ResourceExhausted, match="over the limit of 1000"):
        decode_image(png_bytes(smooth_rgb(64, 64, 0)), ImageLimits(max_bytes=1000))


def test_too_many_pixels_is_refused_before_decoding() -> None:
    huge = encode(Image.new("L", (6000, 5000)), "PNG")
    assert len(huge) < 200_000
    with pytest.raises(ResourceExhausted, match="30000000 pixels"):
        decode_image(huge, ImageLimits(max_pixels=20_000_000))


@pytest.mark.parametrize("size", [(480, 640), (900, 360), (1, 1), (1024, 1024), (2000, 3000), (7, 5000)])
def test_input_size_follows_the_reference(size: tuple[int, int]) -> None:
    assert input_size_of(size) == ResizeLongestSide.get_preprocess_shape(*size, 1024)


def test_encoder_input_is_resized_and_zero_padded() -> None:
    rgb = smooth_rgb(480, 640, seed=1)
    padded, info = prepare_encoder_input(rgb, get_arch("vit_b"))
    assert padded.shape == (1024, 1024, 3) and padded.dtype == np.uint8
    assert info.original_size == (480, 640) and info.input_size == (768, 1024)
    assert np.array_equal(padded[:768], ResizeLongestSide(1024).apply_image(rgb))
    assert not padded[768:].any()


def test_lite_medsam_input_is_256_on_the_longest_side() -> None:
    rgb = smooth_rgb(480, 640, seed=2)
    padded, info = prepare_encoder_input(rgb, get_arch("lite_medsam"))
    assert padded.shape == (256, 256, 3) and info.input_size == (192, 256)
    assert np.array_equal(padded[:192], ResizeLongestSide(256).apply_image(rgb))
    assert not padded[192:].any()


def test_sam2_input_is_the_float_square_resize_of_its_predictor() -> None:
    from sam2.utils.transforms import SAM2Transforms

    rgb = smooth_rgb(480, 640, seed=3)
    resized, info = prepare_encoder_input(rgb, get_arch("sam2.1_hiera_t"))
    assert resized.shape == (3, 1024, 1024) and resized.dtype == np.float32
    assert info.input_size == (1024, 1024)
    # SAM2Transforms normalises too; undo that to compare with the resize alone, to float32 precision.
    normalised = SAM2Transforms(resolution=1024, mask_threshold=0.0)(rgb).numpy()
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)
    np.testing.assert_allclose(resized, normalised * std + mean, atol=1e-6)
