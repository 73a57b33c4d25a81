"""Image encoding and decoding: PNG bytes in parquet, PNG/JPEG/DICOM files on disk."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image, UnidentifiedImageError

from medsight_ray.data.location import Location
from medsight_ray.errors import DataError

DICOM_SUFFIXES = (".dcm", ".dicom")


def encode_png(array: np.ndarray) -> bytes:
    """Encode an 8-bit image as PNG.

    Args:
        array: uint8, (H, W) for grayscale or (H, W, 3) for RGB.
    """
    if array.dtype != np.uint8:
        raise ValueError(f"encode_png needs uint8, got {array.dtype}")
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# What decoding bytes that are not a usable image raises: PIL's UnidentifiedImageError is
# an OSError (so is a truncated file); a broken PNG chunk is a SyntaxError; an image
# with more pixels than Pillow's MAX_IMAGE_PIXELS (a decompression bomb, or a scan far
# beyond what a model takes) is a DecompressionBombError.
UNDECODABLE: tuple[type[Exception], ...] = (UnidentifiedImageError, OSError, SyntaxError, ValueError,
                                            Image.DecompressionBombError)


def decode_image(data: bytes, mode: str, where: str = "image") -> np.ndarray:
    """Decode PNG/JPEG bytes to uint8 (H, W) for mode ``L`` or (H, W, 3) for ``RGB``.

    Raises:
        DataError: the bytes are not a decodable image (names ``where``).
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert(mode))
    except UNDECODABLE as err:
        raise DataError(
            "image bytes do not decode", where=where,
            expected="PNG or JPEG bytes", got=f"{len(data)} bytes ({type(err).__name__}: {err})",
        ) from None


def resize(array: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    """Resize a uint8 image to ``size`` × ``size`` (bilinear, or nearest for masks)."""
    if array.shape[0] == size and array.shape[1] == size:
        return array
    method = Image.NEAREST if nearest else Image.BILINEAR
    return np.asarray(Image.fromarray(array).resize((size, size), method))


def decode_images(column: pa.ChunkedArray | pa.Array, ids: list[str], mode: str, size: int,
                  nearest: bool = False) -> np.ndarray:
    """A column of images as uint8 (B, ch, S, S), S = ``size``, ch = 1 for mode ``L``.

    PNG/JPEG bytes (``binary``) are decoded and resized (bilinear, or nearest for
    masks). Raw pixels of a decoded mirror (``fixed_size_binary``, written by
    :mod:`medsight_ray.data.decoded` from this function's output) are only reshaped.

    Raises:
        DataError: bytes that do not decode (names the row's ``ids`` entry), or raw
            pixels of another size or mode than asked for.
    """
    channels = 1 if mode == "L" else 3
    if pa.types.is_fixed_size_binary(column.type):
        width = column.type.byte_width
        if width != channels * size * size:
            raise DataError("decoded images are of another size or mode", where=f"column of {len(ids)} rows",
                            expected=f"{channels} x {size} x {size} = {channels * size * size} bytes an image",
                            got=f"{width} bytes an image",
                            fix="decode the dataset again at this size (a new sweep does)")
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        parts = [np.frombuffer(c.buffers()[1], dtype=np.uint8, count=len(c) * width, offset=c.offset * width)
                 for c in chunks if len(c)]
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)
        return flat.reshape(len(ids), channels, size, size)
    out = []
    for data, image_id in zip(column.to_pylist(), ids):
        arr = resize(decode_image(data, mode, where=f"image_id {image_id}"), size, nearest=nearest)
        out.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
    if not out:  # resampling can leave a batch empty
        return np.zeros((0, channels, size, size), dtype=np.uint8)
    return np.stack(out)


def read_dicom(path: Path | Location) -> np.ndarray:
    """Read a DICOM radiograph as uint8 (H, W), bright = dense, as a radiologist views it.

    Applies the modality and VOI LUTs when present, inverts ``MONOCHROME1`` (where
    low values are bright), and scales to 8 bits with a 0.5/99.5 percentile window.
    """
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(io.BytesIO(Location.of(path).read_bytes()))
        pixels = ds.pixel_array
    except Exception as err:  # pydicom raises many types for a broken file
        raise DataError(
            "DICOM file does not read", where=str(path),
            expected="a DICOM image with pixel data", got=f"{type(err).__name__}: {err}",
        ) from None
    arr = apply_modality_lut(pixels, ds)
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        arr = apply_voi_lut(arr, ds)
    arr = arr.astype(np.float64)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        arr = arr.max() - arr
    lo, hi = np.percentile(arr, [0.5, 99.5])
    arr = np.clip((arr - lo) / max(hi - lo, 1e-9), 0, 1)
    return (arr * 255 + 0.5).astype(np.uint8)


def read_image_file(path: Path | Location, mode: str) -> np.ndarray:
    """Read a PNG/JPEG/DICOM file (local, or a :class:`Location` on object storage) as
    uint8 in ``mode`` (``L`` or ``RGB``)."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        gray = read_dicom(path)
        return gray if mode == "L" else np.repeat(gray[..., None], 3, axis=2)
    try:
        with Image.open(io.BytesIO(Location.of(path).read_bytes())) as img:
            return np.asarray(img.convert(mode))
    except UNDECODABLE as err:
        raise DataError(
            "image file does not read", where=str(path),
            expected="a PNG, JPEG or DICOM file", got=f"{type(err).__name__}: {err}",
        ) from None
