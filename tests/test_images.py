"""What the vision model is sent for each kind of upload (shared/waste/images.py), no services.

tests/test_waste.py drives HEIC, a large photo and damaged files through the pipeline; these
are the cases in between.
"""

from __future__ import annotations

import io
import random

import pytest
from conftest import IMAGES
from PIL import Image

from shared.waste import images

PHOTO = Image.open(IMAGES / "glass" / "glass1.jpg")


def encoded(picture: Image.Image, format: str, **options) -> bytes:
    out = io.BytesIO()
    picture.save(out, format, **options)
    return out.getvalue()


def sent(data: bytes) -> tuple[Image.Image, str]:
    out, content_type = images.for_vision(data)
    return Image.open(io.BytesIO(out)), content_type


@pytest.mark.parametrize(("format", "content_type"), [("PNG", "image/png"), ("WEBP", "image/webp")])
def test_small_png_and_webp_go_as_they_are_with_the_type_their_bytes_say(format, content_type):
    data = encoded(PHOTO, format)
    assert images.for_vision(data) == (data, content_type)


def test_a_small_photo_turned_by_exif_is_sent_upright():
    exif = Image.Exif()
    exif[0x0112] = 8  # Orientation: rotate 90 degrees counter-clockwise to display
    data = encoded(PHOTO, "JPEG", exif=exif.tobytes())
    picture, content_type = sent(data)
    assert content_type == "image/jpeg" and picture.size == (512, 384)
    assert picture.getexif().get(0x0112) is None  # no viewer turns it a second time


def test_a_heavy_file_of_few_pixels_is_reencoded_at_its_size():
    rng = random.Random(7)
    noise = Image.frombytes("RGB", (1000, 800), rng.randbytes(1000 * 800 * 3))
    data = encoded(noise, "PNG")
    assert len(data) > images.MAX_BYTES
    picture, content_type = sent(data)
    assert content_type == "image/jpeg" and picture.size == (1000, 800)


def test_transparency_becomes_white_not_black():
    clear = Image.new("RGBA", (2000, 1500), (0, 0, 0, 0))
    clear.paste((200, 30, 30, 255), (0, 0, 1000, 1500))
    picture, _ = sent(encoded(clear, "PNG"))
    assert picture.size == (1024, 768)
    assert picture.getpixel((900, 400)) == pytest.approx((255, 255, 255), abs=3)
    assert picture.getpixel((100, 400)) == pytest.approx((200, 30, 30), abs=6)


def test_more_pixels_than_any_camera_is_refused_before_decoding():
    huge = encoded(Image.new("1", (10_000, 6_000)), "PNG")  # 60 MP, a few kilobytes
    with pytest.raises(images.UnreadableImage, match="10000x6000 pixels"):
        images.for_vision(huge)
