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


@pytest.mark.parametrize("pillow_format", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_every_accepted_format_decodes(pillow_format: str) -> None:
    rgb = smooth_rgb(40, 60, seed=2)
    decoded = decode_image(encode(Image.fromarray(rgb), pillow_format))
    assert decoded.shape == (40, 60, 3)
    if pillow_format in ("PNG", "BMP", "TIFF"):  # lossless
        assert np.array_equal(decoded, rgb)


def _eps_file() -> bytes:
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n"


@pytest.mark.parametrize(
    ("pillow_format", "image_bytes"),
    [
        ("EPS", _eps_file()),
        ("PPM", encode(Image.new("RGB", (8, 8)), "PPM")),
        ("ICO", encode(Image.new("RGB", (16, 16)), "ICO")),
        ("TGA", encode(Image.new("RGB", (8, 8)), "TGA")),
        ("PCX", encode(Image.new("RGB", (8, 8)), "PCX")),
    ],
    ids=["eps", "ppm", "ico", "tga", "pcx"],
)
def test_other_formats_are_refused_before_pillow_opens_them(
    pillow_format: str, image_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10, finding 7: an EPS file reached Pillow's Ghostscript lookup before being refused."""
    assert Image.open(io.BytesIO(image_bytes)).format == pillow_format  # Pillow alone would read it

    def must_not_open(*_: object, **__: object) -> None:
        raise AssertionError("Pillow was asked to open a file of a format that is not accepted")

    monkeypatch.setattr(Image, "open", must_not_open)
    with pytest.raises(InvalidArgument, match="not an image format this service reads") as raised:
        decode_image(image_bytes)
    assert raised.value.field == "image"


def test_a_file_is_opened_by_the_plugin_of_its_signature_only() -> None:
    """A PNG signature in front of EPS content is tried as PNG (and fails as one), never as EPS."""
    with pytest.raises(InvalidArgument, match="PNG") as raised:
        decode_image(b"\x89PNG\r\n\x1a\n" + _eps_file())
    assert raised.value.field == "image"


@pytest.mark.parametrize(
    "damaged",
    [
        png_bytes(smooth_rgb(32, 32, 0))[:60],
        encode(Image.fromarray(smooth_rgb(32, 32, 0)), "TIFF")[:100],
        encode(Image.fromarray(smooth_rgb(32, 32, 0)), "GIF")[:40],
        encode(Image.fromarray(smooth_rgb(32, 32, 0)), "BMP")[:30],
        encode(Image.fromarray(smooth_rgb(32, 32, 0)), "WEBP")[:30],
        encode(Image.fromarray(smooth_rgb(32, 32, 0)), "JPEG")[:300],
        b"BM" + b"\xff" * 60,
        b"II*\x00" + b"\xff" * 60,
        b"MM\x00*" + b"\x00" * 60,
    ],
    ids=["png", "tiff", "gif", "bmp", "webp", "jpeg", "bmp-header", "tiff-le-header", "tiff-be-header"],
)
def test_damaged_headers_are_invalid_argument(damaged: bytes) -> None:
    with pytest.raises(InvalidArgument) as raised:
        decode_image(damaged)
    assert raised.value.field == "image"


@pytest.mark.parametrize(("columns", "rows"), [(2049, 1), (1, 3000), (100_000, 1)])
def test_images_whose_short_side_would_vanish_are_invalid_argument(columns: int, rows: int) -> None:
    """Issue 10, finding 2: the resize gave a side of 0 pixels, which ended in INTERNAL."""
    rgb = decode_image(encode(Image.new("RGB", (columns, rows)), "PNG"))
    with pytest.raises(InvalidArgument, match="under 1 pixel") as raised:
        prepare_encoder_input(rgb, get_arch("vit_b"))
    assert raised.value.field == "image"
    # LiteMedSAM's 256 input refuses anything over 512:1; SAM 2's square resize takes any shape.
    with pytest.raises(InvalidArgument, match="512:1"):
        prepare_encoder_input(np.zeros((1, 513, 3), np.uint8), get_arch("lite_medsam"))
    assert prepare_encoder_input(rgb, get_arch("sam2.1_hiera_t"))[0].shape == (3, 1024, 1024)


@pytest.mark.parametrize(("columns", "rows", "input_size"), [(2048, 1, (1, 1024)), (1, 2048, (1024, 1))])
def test_the_most_elongated_accepted_images_keep_one_pixel(
    columns: int, rows: int, input_size: tuple[int, int]
) -> None:
    padded, info = prepare_encoder_input(np.zeros((rows, columns, 3), np.uint8), get_arch("vit_b"))
    assert info.input_size == input_size and padded.shape == (1024, 1024, 3)


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
