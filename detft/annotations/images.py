"""Images as displayed (EXIF orientation applied): header probes (size, usability) and decoding.

Only the header is parsed (PIL opens lazily), so probing a dataset costs a few microseconds per image
instead of a full decode. Truncated JPEGs are caught by their missing end-of-image marker.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DetftError
from .dataset import ImageRecord

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
MAX_PIXELS = 2 * 89_478_485  # Pillow's decompression-bomb limit: probe refuses larger images, so no mask is larger either
LITTER_FOLDERS = {"__MACOSX"}  # a macOS zip's AppleDouble mirror: ``._name.jpg`` files that are not images
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED = {5, 6, 7, 8}  # orientations that swap width and height


@dataclass(frozen=True)
class ImageInfo:
    width: int = 0
    height: int = 0
    error: str | None = None
    exif_rotated: bool = False
    frames: int = 1  # an animated GIF/WebP or a multi-page TIFF: detft uses the first frame

    @property
    def ok(self) -> bool:
        return self.error is None


def probe(path: Path) -> ImageInfo:
    """Displayed size of ``path``, or the reason it cannot be used (remembered until the file changes: a long-lived
    process, the Python API's, sees a repaired image as repaired)."""
    try:
        st = os.stat(path)
    except OSError:
        return _probe(path)
    return _probe_cached(path, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=65536)
def _probe_cached(path: Path, _mtime_ns: int, _size: int) -> ImageInfo:
    return _probe(path)


probe.cache_clear = _probe_cached.cache_clear  # type: ignore[attr-defined]  (as when probe was the cached function)


def probe_bytes(data: bytes) -> ImageInfo:
    """:func:`probe` of an image held in memory (LabelMe's embedded ``imageData``)."""
    return _probe(io.BytesIO(data))


def _probe(path: Path | io.BytesIO) -> ImageInfo:
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(_EXIF_ORIENTATION, 1) if im.format in ("JPEG", "TIFF", "PNG", "WEBP") else 1
            fmt = im.format
            frames = int(getattr(im, "n_frames", 1) or 1)
    except FileNotFoundError:
        return ImageInfo(error="missing")
    except UnidentifiedImageError:
        return ImageInfo(error="unreadable (not a known image format: its bytes are neither JPEG, PNG nor any "
                               "other image kind Pillow reads)")
    except (OSError, ValueError, SyntaxError) as e:
        return ImageInfo(error=f"unreadable ({e.__class__.__name__}: {e})")
    except ImportError:  # ultralytics, once imported, replaces Image.open with a wrapper that answers a file of
        # no known format by importing pi_heif, which is not installed: the file is simply not an image
        return ImageInfo(error="unreadable (not a known image format: its bytes are neither JPEG, PNG nor any "
                               "other image kind Pillow reads)")
    except Exception as e:  # noqa: BLE001  any other decoder failure means unreadable too
        return ImageInfo(error=f"unreadable ({e.__class__.__name__}: {e})")
    if fmt == "JPEG" and isinstance(path, Path) and not _jpeg_complete(path):
        return ImageInfo(w, h, error="corrupt (truncated JPEG: no end-of-image marker)")
    if orientation in _TRANSPOSED and fmt != "TIFF":  # Pillow's TIFF plugin already reports the displayed size
        w, h = h, w
    return ImageInfo(w, h, exif_rotated=orientation not in (1, None), frames=frames)


def _jpeg_complete(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(0, 2)
        if f.tell() < 4:
            return False
        f.seek(-2, 2)
        tail = f.read(2)
        if tail == b"\xff\xd9":
            return True
        # some encoders pad after EOI; look a little further back
        f.seek(max(0, f.tell() - 1024))
        return b"\xff\xd9" in f.read()


def native_path(path: Path | str) -> str:
    """``path`` for a native library (OpenCV, FFmpeg), which must get valid UTF-8: a name holding other
    bytes (a Latin-1 file name on Linux) crashes OpenCV's decoders outright, so it is a named error."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise DetftError(f"{text.encode('utf-8', 'surrogateescape')!r}: the file name is not valid UTF-8, which "
                         "OpenCV cannot open; rename the file") from None
    return text


def decode_file(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """OpenCV decoding from bytes read by Python: no file name ever reaches the native decoder (one that is
    not UTF-8 makes ``cv2.imread`` crash the process), and EXIF orientation is applied as imread would."""
    data = np.fromfile(path, np.uint8)
    return cv2.imdecode(data, flags) if data.size else None


def read_bgr(path: Path) -> np.ndarray:
    """Decode any image file as displayed (EXIF orientation applied), BGR as OpenCV keeps it.

    The header is checked first, so a decompression bomb (a 30000x30000 PNG is 2.7 GB decoded) is refused
    by the same pixel limit as ``convert`` (Pillow's) before anything is decoded."""
    info = probe(path)
    if not info.ok:
        raise DetftError(f"cannot use image {path}: {info.error}")
    bgr = decode_file(path)
    if bgr is None:
        raise DetftError(f"cannot decode image {path}")
    return bgr


def read_rgb(image: ImageRecord) -> np.ndarray:
    """Decode an annotated image as displayed (OpenCV applies EXIF orientation, the frame the boxes are
    in), checking it has the size the annotations say."""
    if image.path is None and image.data is not None:
        bgr = cv2.imdecode(np.frombuffer(image.data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DetftError(f"{image.where()}: the embedded image cannot be decoded")
    else:
        bgr = read_bgr(image.path)
    if image.window is not None:  # a tile (detft/tiling.py): its part of the source image
        x0, y0, x1, y1 = image.window
        if bgr.shape[0] < y1 or bgr.shape[1] < x1:
            raise DetftError(f"{image.path or image.where()} decodes to {bgr.shape[1]}x{bgr.shape[0]}, too small for "
                             f"its tile {image.window}")
        bgr = bgr[y0:y1, x0:x1]
    if bgr.shape[:2] != (image.height, image.width):
        raise DetftError(f"{image.path or image.where()} decodes to {bgr.shape[1]}x{bgr.shape[0]}, annotations say {image.width}x{image.height}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def is_image_name(name: str) -> bool:
    """Whether a file of this name is taken for an image: an image suffix, and not hidden (macOS's AppleDouble
    ``._photo.jpg`` beside every file of a zip made on a Mac, an editor's ``.~lock``)."""
    return not name.startswith(".") and PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


def find_images(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, in a stable order; hidden folders (``.ipynb_checkpoints``) and a
    macOS zip's ``__MACOSX`` left out: their files are copies or not images."""
    return sorted(p for p in folder.rglob("*") if is_image_name(p.name) and p.is_file()
                  and not any(part.startswith(".") or part in LITTER_FOLDERS for part in p.relative_to(folder).parts[:-1]))
