"""Photos made ready for the vision model: a format it reads, no larger than it looks at.

The model reads JPEG, PNG and WEBP but not HEIC, the iPhone's default, and with detail "low"
it sees the image at 512x512, so a 10 MiB photo sent whole is bandwidth and base64 for nothing.
A small upright JPEG, PNG or WEBP goes as it is, byte for byte; anything else (HEIC, more
than MAX_SIDE pixels on a side, more than MAX_BYTES, an EXIF orientation that turns it)
becomes an upright JPEG within MAX_SIDE. Bytes that do not decode are refused here, before
they cost a model call. Pillow and pillow-heif are imported on first use only: every
function's cold start pays for what it imports, and only the analyze stage prepares images.
"""

from __future__ import annotations

import io
import threading
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import PIL.Image

MAX_SIDE = 1024  # twice what detail "low" looks at: the model's own downscale stays sharp
MAX_BYTES = 1_000_000
MAX_PIXELS = 50_000_000  # above the largest phone camera (48 MP); a bigger one is no photo
JPEG_QUALITY = 85
FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")  # what uploads may be; no other decoder is tried
SENT_AS_IS = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}

# A full decode of a 12 MP HEIC takes about 90 MiB, a 48 MP one about 340 MiB, and the analyze
# function runs 32 threads in 512 MiB with one CPU: one decode at a time per process keeps the
# pod alive and costs nothing in throughput.
_decoding = threading.Lock()


class UnreadableImage(ValueError):
    """The stored bytes are not an image this pipeline can decode."""


@cache
def _read_heif_too() -> None:
    """Teach Pillow HEIF/HEIC, once per process."""
    from pillow_heif import register_heif_opener

    register_heif_opener()


# Everything a decoder may raise on bytes it cannot read: Pillow's OSError (unidentified,
# truncated), libheif's errors as pillow-heif maps them.
_UNREADABLE = (OSError, EOFError, ValueError, SyntaxError, RuntimeError)
# The formats each accepted content type may hold (MPO: a JPEG with a second frame).
DECLARED = {
    "image/jpeg": ("JPEG", "MPO"),
    "image/png": ("PNG",),
    "image/webp": ("WEBP",),
    "image/heic": ("HEIF",),
}


class NotDeclaredType(UnreadableImage):
    """The bytes are an image, but not of the type the upload declared."""


def _open(image: bytes) -> PIL.Image.Image:
    """The image with its header read and nothing decoded; refused when it is no image we
    take or has more pixels than MAX_PIXELS (a decompression bomb is refused unopened)."""
    from PIL import Image

    _read_heif_too()
    try:
        picture = Image.open(io.BytesIO(image), formats=FORMATS)  # reads the header only
    except Image.DecompressionBombError as exc:  # Pillow's own bound, above ours
        raise UnreadableImage(f"it has too many pixels ({exc})") from exc
    except _UNREADABLE as exc:
        raise UnreadableImage("it is not a JPEG, PNG, WEBP or HEIC image") from exc
    width, height = picture.size
    if width * height > MAX_PIXELS:
        raise UnreadableImage(
            f"it has {width}x{height} pixels, more than {MAX_PIXELS // 1_000_000} megapixels"
        )
    return picture


def check(image: bytes, content_type: str) -> None:
    """That the bytes are a whole image of the declared type, within MAX_PIXELS: checked when
    the upload completes, whether or not a model will look at it, since the stored image is
    served back as that type. The pixel count is read from the header before anything is
    decoded; the decode (at 1/8 scale for a JPEG) finds a truncated or damaged file."""
    picture = _open(image)
    if picture.format not in DECLARED.get(content_type, ()):
        raise NotDeclaredType(f"it is a {picture.format} image, not {content_type}")
    try:
        with _decoding:
            picture.draft(None, (MAX_SIDE // 8, MAX_SIDE // 8))
            picture.load()
    except _UNREADABLE as exc:
        raise UnreadableImage(f"its {picture.format} data is damaged ({str(exc).strip()})") from exc


def for_vision(image: bytes) -> tuple[bytes, str]:
    """(bytes, content type) to send: the original when the model reads it as it is, else a
    JPEG within MAX_SIDE, turned upright by its EXIF orientation. The content type is read
    from the bytes, not taken from what the upload declared."""
    from PIL import ExifTags

    picture = _open(image)
    width, height = picture.size
    content_type = SENT_AS_IS.get(picture.format or "")
    try:
        upright = picture.getexif().get(ExifTags.Base.Orientation, 1) == 1
        small = max(width, height) <= MAX_SIDE and len(image) <= MAX_BYTES
        if content_type and upright and small:
            picture.load()  # a damaged file fails here, not as a wasted model call
            return image, content_type
        with _decoding:
            return _as_small_jpeg(picture), "image/jpeg"
    except _UNREADABLE as exc:
        raise UnreadableImage(f"its {picture.format} data is damaged ({str(exc).strip()})") from exc


def _as_small_jpeg(picture: PIL.Image.Image) -> bytes:
    from PIL import Image, ImageOps

    # A JPEG decodes straight at 1/2, 1/4 or 1/8 of its size, still at least MAX_SIDE (draft,
    # a no-op for other formats): a 12 MP photo in a quarter of the time and memory. Shrink
    # before turning, so the rotation works on the small copy; the box is square, so the
    # order does not change the result.
    picture.draft(None, (MAX_SIDE, MAX_SIDE))
    picture.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    ImageOps.exif_transpose(picture, in_place=True)
    if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
        # JPEG has no alpha: transparent areas become white, as a viewer would show them
        rgba = picture.convert("RGBA")
        picture = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    out = io.BytesIO()
    picture.convert("RGB").save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()
