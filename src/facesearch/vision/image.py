"""Image input: the byte and size limits, format sniffing, decoding and EXIF orientation (as
Rekognition takes images)."""

from __future__ import annotations

import ctypes
import io
import math
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facesearch.vision.errors import ImageError, ImageErrorKind

MAX_IMAGE_BYTES = 5_242_880  # Image.Bytes limit (5 MiB, before base64)
MAX_S3_IMAGE_BYTES = 15 * 1024 * 1024  # S3Object images
MIN_IMAGE_SIDE = 80  # px, both width and height
# Pillow's own decompression-bomb bar (about 89 megapixels), enforced as an error before decoding.
MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
# Larger images are analysed reduced by a whole factor (a JPEG already while decoding): a face
# that matters is still hundreds of pixels wide, and 81 MP of RGB would be 243 MB per request.
MAX_ANALYSIS_PIXELS = 25_000_000
# Work on an image this large frees enough memory to be worth returning (return_freed_memory).
LARGE_IMAGE_PIXELS = MAX_ANALYSIS_PIXELS // 2
# Pixels being decoded at once in this process, all threads together: a flood of large images
# waits its turn here rather than multiplying the memory one decode takes.
DECODE_BUDGET_PIXELS = 100_000_000

# decode_image refuses such images with an error itself; Pillow's warning would only be noise.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def invalid_format() -> ImageError:
    """The error for bytes that are not a decodable JPEG or PNG."""
    return ImageError(ImageErrorKind.INVALID_FORMAT, "not a decodable JPEG or PNG image")


def too_large(what: str) -> ImageError:
    """The error for an image over the byte or pixel limits (``what``: which, and how far)."""
    return ImageError(ImageErrorKind.TOO_LARGE, f"image too large: {what}")


def sniff_format(data: bytes) -> str | None:
    """``"JPEG"`` or ``"PNG"`` from the leading bytes, else None (the file name is never used)."""
    if data.startswith(_JPEG_MAGIC):
        return "JPEG"
    if data.startswith(_PNG_MAGIC):
        return "PNG"
    return None


class _Budget:
    """A count of pixels shared by the decoding threads; each takes its image's share (at most
    the whole budget, so any image may go alone) and waits while the others leave too little."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._free = total
        self._ready = threading.Condition()

    @contextmanager
    def hold(self, amount: int) -> Iterator[None]:
        amount = min(amount, self._total)
        with self._ready:
            self._ready.wait_for(lambda: self._free >= amount)
            self._free -= amount
        try:
            yield
        finally:
            with self._ready:
                self._free += amount
                self._ready.notify_all()


_decode_budget = _Budget(DECODE_BUDGET_PIXELS)


def return_freed_memory() -> None:
    """Give the memory that work on a large image freed back to the system (glibc's malloc_trim).

    Its blocks stay in the working thread's heap otherwise: a flood of 9000x9000 PNGs left a
    server 1.8 GiB larger for good. Only after large images (``LARGE_IMAGE_PIXELS``): a trim
    costs a few milliseconds, and a fixed mmap threshold (the other cure) cost 15 ms on every
    ordinary photo's analysis. A no-op off glibc."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def decode_image(data: bytes, *, max_bytes: int = MAX_IMAGE_BYTES) -> np.ndarray:
    """Decode JPEG/PNG bytes into an RGB uint8 array (H, W, 3) in the EXIF-corrected frame,
    reduced by a whole factor when over ``MAX_ANALYSIS_PIXELS`` (boxes are ratios: unchanged).

    Raises ImageError: TOO_LARGE (bytes over ``max_bytes`` or pixels over Pillow's bomb limit),
    INVALID_FORMAT (not JPEG/PNG, empty, undecodable, truncated), TOO_SMALL (a side under
    ``MIN_IMAGE_SIDE`` pixels).
    """
    if len(data) > max_bytes:
        raise too_large(f"{len(data)} bytes, over {max_bytes}")
    fmt = sniff_format(data)
    if fmt is None:
        raise invalid_format()
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as img:
            # The header gives the size before any pixel is decoded: refuse bombs up front
            # instead of relying on Pillow's warning (which is only an error at twice the limit).
            pixels, shortest = img.width * img.height, min(img.size)
            if pixels > MAX_IMAGE_PIXELS:
                raise too_large(f"{img.width}x{img.height} pixels, over {MAX_IMAGE_PIXELS}")
            factor = math.ceil(math.sqrt(pixels / MAX_ANALYSIS_PIXELS))
            with _decode_budget.hold(pixels):
                if factor > 1:
                    # JPEG's decoder scales by 1/2, 1/4 or 1/8 as it goes; PNG's cannot.
                    img.draft("RGB", (img.width // factor, img.height // factor))
                img.load()
                factor = math.ceil(math.sqrt(img.width * img.height / MAX_ANALYSIS_PIXELS))
                reduced = img.reduce(factor) if factor > 1 else img
            rgb = ImageOps.exif_transpose(reduced).convert("RGB")
        if factor > 1:
            return_freed_memory()
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise too_large(f"over Pillow's limit of {MAX_IMAGE_PIXELS} pixels") from None
    except (OSError, SyntaxError, ValueError, EOFError, UnidentifiedImageError):
        raise invalid_format() from None
    if shortest < MIN_IMAGE_SIDE:
        raise ImageError(
            ImageErrorKind.TOO_SMALL,
            f"image of {rgb.width}x{rgb.height} pixels, under {MIN_IMAGE_SIDE} on a side",
            size=(rgb.width, rgb.height),
            min_side=MIN_IMAGE_SIDE,
        )
    return np.asarray(rgb)
