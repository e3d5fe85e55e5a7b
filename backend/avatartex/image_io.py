"""Reading portraits and textures, writing PNGs: every oddity of real photo files handled in one place.

Pixels leave this module as float32 sRGB in 0..1, (H, W, 3), upright (EXIF orientation applied).
Pillow decodes everything it decodes faithfully; the one gap it has — 16-bit-per-channel colour PNG
and TIFF, which Pillow silently truncates to 8 bits — is read with OpenCV instead, and 16-bit PNGs
are written with OpenCV for the same reason.
"""

from __future__ import annotations

import functools
import io
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit, prange
from PIL import Image, ImageFile

from .imaging import from_lab, to_lab
from .protocol import AvatarTexError, ErrorCode

MAX_PORTRAIT_PIXELS = 200_000_000
"""Largest image accepted (pixels). Above every real camera (a 150 MP medium-format frame fits), far
below the gigapixel 'decompression bombs' that would exhaust memory."""

# Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; we refuse ourselves, with a typed
# error, at MAX_PORTRAIT_PIXELS, so Pillow's own limit only has to sit at or above ours.
Image.MAX_IMAGE_PIXELS = MAX_PORTRAIT_PIXELS
# A truncated file must be an error, not a grey band at the bottom of someone's face.
ImageFile.LOAD_TRUNCATED_IMAGES = False

_MID_GREY = 0.5

# EXIF orientation tag value -> Pillow transpose applied to make the image upright
# (the same table as PIL.ImageOps.exif_transpose).
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


DOWNSCALE_TO = 4096
"""The long side a too-large image is asked down to: a photo is read at 2048 (``load_portrait``), and
4096 is the largest texture ``generate`` makes."""


def _unreadable(path: Path, why: str, what: str = "photo") -> AvatarTexError:
    """``what`` is the image's part, ``photo`` or ``texture``: the hint says how to give another."""
    return AvatarTexError(
        ErrorCode.PORTRAIT_UNREADABLE,
        f"Cannot read the {what} {str(path)!r}: {why}.",
        f"Use a PNG, JPEG, HEIC, TIFF, WebP or AVIF {what}; re-export it from an image editor if it "
        "was damaged or only partly downloaded.",
    )


def _too_large(path: Path, why: str, what: str) -> AvatarTexError:
    return AvatarTexError(
        ErrorCode.PORTRAIT_UNREADABLE,
        f"The {what} {str(path)!r} is too large: {why}.",
        f"Downscale it to at most {DOWNSCALE_TO} pixels on its long side (an image editor's Resize); "
        f"AvatarTex reads at most {MAX_PORTRAIT_PIXELS // 1_000_000} megapixels.",
    )


HEIF_SUFFIXES = (".heic", ".heif", ".hif")
"""HEIF photos: iPhones (and many Android phones) save HEIC by default."""


@functools.cache
def _heif_registered() -> bool:
    """Pillow opens HEIC/HEIF once pillow-heif's opener is registered (with its EXIF, and its
    rotation applied and the orientation tag reset, so nothing turns it twice); False where
    pillow-heif is not installed."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def _orient_array(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to an (H, W, ...) array, as exif_transpose does to an Image."""
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return array.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(array, -1)
    if orientation == 7:
        return array.swapaxes(0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(array, 1)
    return array


def _is_high_bit_colour(image: Image.Image) -> bool:
    """True for 16-bit RGB(A) PNG/TIFF, which Pillow would decode to 8 bits."""
    if image.format not in ("PNG", "TIFF") or image.mode not in ("RGB", "RGBA"):
        return False
    for tile in image.tile:
        args = tile.args if hasattr(tile, "args") else tile[3]
        rawmode = args[0] if isinstance(args, tuple) else args
        if isinstance(rawmode, str) and "16" in rawmode:
            return True
    return False


def _target_size(width: int, height: int, max_side: int | None) -> tuple[tuple[int, int], float]:
    if not max_side or max(width, height) <= max_side:
        return (width, height), 1.0
    scale = max_side / max(width, height)
    return (max(1, round(width * scale)), max(1, round(height * scale))), scale


def _resize_array(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    # INTER_AREA averages every source pixel: the right low-pass for large downscales.
    return cv2.resize(array, size, interpolation=cv2.INTER_AREA)


def _tiff_unturned(path: Path) -> np.ndarray | None:
    """A TIFF's bytes with its first image's orientation tag set to 1 (as stored), for OpenCV, which
    turns a TIFF by its tag itself and fails on a turn that swaps the sides; None where the tag cannot
    be found (tifffile, which scikit-image brings, reads the tags whatever the compression)."""
    try:
        import tifffile

        data = bytearray(path.read_bytes())
        with tifffile.TiffFile(io.BytesIO(data)) as tiff:
            tag = tiff.pages[0].tags.get(274)
            if tag is None or tag.dtype != 3 or tag.count != 1:
                return None
            byte_order = tiff.byteorder
            where = tag.valueoffset
    except Exception:  # noqa: BLE001 - a file tifffile cannot parse: OpenCV reads it as it can
        return None
    data[where : where + 2] = (1).to_bytes(2, "little" if byte_order == "<" else "big")
    return np.frombuffer(bytes(data), np.uint8)


def _decode_high_bit(
    path: Path, orientation: int, max_side: int | None, what: str, tiff: bool = False
) -> tuple[np.ndarray, float]:
    """16-bit colour PNG/TIFF at full precision through OpenCV; (H, W, 3|4) float32 0..1.

    A TIFF with an orientation tag: OpenCV turns it itself even when asked for the data unchanged
    (so it was turned twice), and fails on a turn that swaps its sides ("the 16-bit colour data could
    not be decoded" of a sound file, whatever its compression); it is decoded with the tag set to 1 and
    turned here, or, where the tag cannot be rewritten, taken as OpenCV turned it."""
    import cv2

    unturned = _tiff_unturned(path) if tiff and orientation != 1 else None
    if unturned is not None:
        data = cv2.imdecode(unturned, cv2.IMREAD_UNCHANGED)
    else:
        data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    turned_by_opencv = tiff and unturned is None
    if data is not None and data.ndim == 3:
        data = data[..., [2, 1, 0, 3][: data.shape[2]]]  # BGR(A) -> RGB(A)
    if data is None or data.ndim != 3 or data.shape[2] not in (3, 4):
        raise _unreadable(path, "the 16-bit colour data could not be decoded", what)
    data = np.ascontiguousarray(data if turned_by_opencv else _orient_array(data, orientation))
    size, scale = _target_size(data.shape[1], data.shape[0], max_side)
    if scale != 1.0:
        data = _resize_array(data, size)
    peak = 65535.0 if data.dtype == np.uint16 else 255.0
    return data.astype(np.float32) / peak, scale


def _colour_profile(image: Image.Image) -> tuple[Any, str] | None:
    """The image's embedded ICC profile (a Pillow ``ImageCmsProfile``) and its name where it is an RGB
    profile other than sRGB (Display P3, as phones save; Adobe RGB; Rec. 2020), else None."""
    from PIL import ImageCms

    data = image.info.get("icc_profile")
    if not data:
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(data))
        description = ImageCms.getProfileDescription(profile).strip()
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError):
        return None  # a broken profile must not cost the photo: read as sRGB
    if profile.profile.xcolor_space.strip() != "RGB" or "srgb" in description.lower().replace(" ", ""):
        return None
    return profile, description or "an embedded profile"


def _to_srgb_8bit(image: Image.Image, profile: Any) -> Image.Image:
    """An 8-bit RGB(A) image from ``profile``'s colours into sRGB's (little CMS, perceptual)."""
    from PIL import ImageCms

    alpha = image.getchannel("A") if image.mode == "RGBA" else None
    rgb = ImageCms.profileToProfile(
        image.convert("RGB"), profile, ImageCms.createProfile("sRGB"), outputMode="RGB"
    )
    if alpha is not None:
        rgb.putalpha(alpha)
    return rgb


def _to_srgb_float(array: np.ndarray, profile: Any) -> np.ndarray:
    """A float (H, W, 3|4) 0..1 image (16 bit) from ``profile``'s colours into sRGB's: little CMS
    over a 33-node cube of 8-bit colours, read between its nodes trilinearly."""
    from scipy.interpolate import RegularGridInterpolator

    nodes = np.round(np.linspace(0, 255, 33)).astype(np.uint8)
    grid = np.stack(np.meshgrid(nodes, nodes, nodes, indexing="ij"), axis=-1).reshape(33 * 33, 33, 3)
    cube = np.asarray(_to_srgb_8bit(Image.fromarray(grid, "RGB"), profile), np.float32) / 255.0
    lookup = RegularGridInterpolator([nodes / 255.0] * 3, cube.reshape(33, 33, 33, 3))
    out = array.copy()
    colour = np.clip(array[..., :3], 0.0, 1.0).reshape(-1, 3)
    out[..., :3] = lookup(colour).reshape(array.shape[:2] + (3,)).astype(np.float32)
    return out


def _to_float(image: Image.Image) -> np.ndarray:
    """An upright Pillow image in any mode -> float32 (H, W, C) 0..1, C in {1, 2, 3, 4}."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return (np.asarray(image, np.float32) / 65535.0)[..., None]
    if mode == "I":
        array = np.asarray(image, np.float64)
        # 16-bit greyscale sometimes arrives as 32-bit integer mode (TIFF); anything larger is 32-bit data.
        peak = 65535.0 if array.max(initial=0) <= 65535 else float(2**32 - 1)
        return (np.clip(array, 0, None) / peak).astype(np.float32)[..., None]
    if mode == "F":
        return np.clip(np.asarray(image, np.float32), 0.0, 1.0)[..., None]
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    elif mode in ("1", "L"):
        image = image.convert("L")
    elif mode not in ("RGB", "RGBA", "LA"):
        image = image.convert("RGBA" if "A" in mode else "RGB")  # CMYK, YCbCr, LAB, HSV, RGBa...
    array = np.asarray(image, np.float32) / 255.0
    return array[..., None] if array.ndim == 2 else array


def _decode(path: Path, max_side: int | None, what: str = "photo") -> tuple[np.ndarray, dict[str, Any]]:
    """Open, orient and (down)scale an image file; float32 (H, W, C) 0..1 plus facts about it.
    ``what`` (``photo`` or ``texture``) names the file in the errors."""
    again = (
        "give its path again (--portrait, or the Portrait in the AvatarTex panel)"
        if what == "photo"
        else "give the texture generate wrote (OUT/texture.png; OUT/texture.<UDIM>.png for UDIM tiles)"
    )
    if path.is_dir():
        raise AvatarTexError(
            ErrorCode.PORTRAIT_MISSING,
            f"The {what} {str(path)!r} is a folder, not an image file.",
            f"Give an image file, not its folder: {again}.",
        )
    if not path.is_file():
        raise AvatarTexError(
            ErrorCode.PORTRAIT_MISSING,
            f"The {what} {str(path)!r} does not exist.",
            f"Check the path; {again}.",
        )
    if not _heif_registered() and path.suffix.lower() in HEIF_SUFFIXES:
        raise AvatarTexError(
            ErrorCode.PORTRAIT_UNREADABLE,
            f"Cannot read the image {str(path)!r}: HEIC/HEIF photos need the pillow-heif package, which "
            "this backend environment lacks.",
            "Build the backend environment again (the add-on's preferences: Create Environment; or "
            "bash scripts/setup.sh), or export the photo as JPEG.",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError:
        raise _too_large(path, "it claims an absurd number of pixels (a decompression bomb?)", what) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise _unreadable(path, f"not an image Pillow recognises ({exc})", what) from None
    try:
        width, height = image.size
        if width * height > MAX_PORTRAIT_PIXELS:
            raise _too_large(
                path,
                f"{width}x{height} is {width * height // 1_000_000} megapixels, more than "
                f"{MAX_PORTRAIT_PIXELS // 1_000_000}",
                what,
            )
        # Before getexif(): reading a PNG's EXIF loads the pixels, which clears the tile list.
        high_bit = _is_high_bit_colour(image)
        try:
            exif = image.getexif()
            orientation = int(exif.get(0x0112, 1))
        except Exception:  # a broken EXIF block must not cost the photo
            exif, orientation = {}, 1
        source_mode, source_format = image.mode, image.format
        profile, profile_name = (_colour_profile(image) if what == "photo" else None) or (None, "")
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        info: dict[str, Any] = {
            "original_size": (width, height),
            "mode": source_mode,
            "format": source_format,
            "orientation": orientation,
            "bit_depth": 8,
            "warnings": [],
        }
        info.update(_lens(exif, width, height))
        if high_bit:
            array, scale = _decode_high_bit(path, orientation, max_side, what, source_format == "TIFF")
            info["bit_depth"] = 16
            if profile is not None and array.shape[2] in (3, 4):
                array = _to_srgb_float(array, profile)
        else:
            size, scale = _target_size(image.size[0], image.size[1], max_side)
            if scale != 1.0 and image.mode in ("RGB", "RGBA", "L", "LA", "P", "PA", "CMYK", "YCbCr", "1"):
                if image.mode in ("P", "PA", "1"):
                    image = image.convert(
                        "RGBA" if "transparency" in image.info or image.mode == "PA" else "RGB"
                    )
                # draft() lets the JPEG decoder itself work at 1/2..1/8 scale (memory and time of an
                # 8000x8000 photo drop 16-64x); reducing_gap then box-reduces before the Lanczos pass.
                if image.format == "JPEG":
                    image.draft(image.mode, size)
                image.thumbnail(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
            else:
                image.load()
            if orientation in _ORIENTATION_TRANSPOSE:
                image = image.transpose(_ORIENTATION_TRANSPOSE[orientation])
            if profile is not None and image.mode in ("RGB", "RGBA"):
                image = _to_srgb_8bit(image, profile)
            elif profile is not None:
                profile = None  # a palette or greyscale image's RGB profile: read as it is
            if image.mode.startswith("I;16") or image.mode == "I":
                info["bit_depth"] = 16
            array = _to_float(image)
            if scale != 1.0 and (array.shape[1], array.shape[0]) != _target_size(width, height, max_side)[0]:
                array = _resize_array(array, _target_size(width, height, max_side)[0])
                array = array[..., None] if array.ndim == 2 else array
    except AvatarTexError:
        raise
    except Image.DecompressionBombError:
        raise _too_large(path, "it claims an absurd number of pixels (a decompression bomb?)", what) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise _unreadable(path, f"the file is corrupt or truncated ({exc})", what) from None
    finally:
        image.close()
    if profile is not None:
        info["colour_profile"] = profile_name
    info["scale"] = float(array.shape[1] / width) if scale != 1.0 else 1.0
    info["size"] = (int(array.shape[1]), int(array.shape[0]))
    return array, info


FULL_FRAME_DIAGONAL_MM = 43.27
"""The diagonal of a 36 x 24 mm frame: what a "35 mm equivalent" focal length is relative to."""


def _lens(exif: Any, width: int, height: int) -> dict[str, Any]:
    """The camera's field of view from EXIF, when the photo says: ``focal_35mm`` and
    ``fov_y_deg_exif`` (vertical, of the upright image), else nothing.

    The 35 mm equivalent focal length relates to the frame's diagonal. A photo cropped after it was
    taken keeps its EXIF; where the EXIF also gives the pixel size the camera wrote
    (PixelXDimension/PixelYDimension), the focal length in pixels is taken from that frame, which a
    crop leaves unchanged."""
    try:
        ifd = exif.get_ifd(0x8769) if hasattr(exif, "get_ifd") else {}
        focal = float(ifd.get(0xA405) or 0)  # FocalLengthIn35mmFilm
        frame = (int(ifd.get(0xA002) or 0), int(ifd.get(0xA003) or 0))  # PixelX/YDimension
    except Exception:  # a broken EXIF block must not cost the photo
        return {}
    if not 8.0 <= focal <= 1200.0:
        return {}
    diagonal = float(np.hypot(*frame)) if min(frame) > 0 else float(np.hypot(width, height))
    focal_px = focal * diagonal / FULL_FRAME_DIAGONAL_MM
    fov_y = float(np.degrees(2 * np.arctan(0.5 * height / focal_px)))
    return {"focal_35mm": focal, "fov_y_deg_exif": round(fov_y, 3)}


def load_portrait(path: str | os.PathLike, max_side: int | None = 2048) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a portrait photo as float32 sRGB (H, W, 3) in 0..1, upright and at most ``max_side`` wide.

    Handles EXIF orientation, greyscale, palette, 16-bit PNG/TIFF (full precision) and transparency
    (composited on mid grey, with a warning). Huge photos are downscaled while decoding. Returns the
    image and ``info``: ``original_size`` (W, H) upright, ``size``, ``scale`` (output/original),
    ``bit_depth``, ``mode``, ``format``, ``orientation``, ``warnings`` (list of str) and, when the
    EXIF gives a 35 mm equivalent focal length, ``focal_35mm`` and ``fov_y_deg_exif``.

    Raises AvatarTexError PORTRAIT_MISSING (no such file, or a folder) or PORTRAIT_UNREADABLE (not
    an image, corrupt, truncated, more than MAX_PORTRAIT_PIXELS).
    """
    path = Path(path)
    array, info = _decode(path, max_side)
    channels = array.shape[2]
    if channels in (2, 4):
        alpha = array[..., -1:]
        colour = array[..., :-1]
        if float(alpha.min()) < 1.0:
            info["warnings"].append(
                f"{path.name} has transparent pixels; they were filled with mid grey. A photo without "
                "transparency gives the face analysis the real background."
            )
        array = colour * alpha + _MID_GREY * (1.0 - alpha)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array, dtype=np.float32), info


MONOCHROME_SPREAD = 0.03
"""Spread of the sRGB channels (strongest less weakest, 0..1) under which 99 % of a photo's pixels lie
when it is black and white: a greyscale photo saved as RGB holds none, its JPEG 0-0.01; a colour
portrait's skin alone 0.1-0.3, on more than 1 % of any portrait's pixels (the sweep's portraits and
the samples: 0.15-0.6)."""
NEUTRAL_SKIN_AB = np.array([12.0, 16.0], np.float32)
"""CIELAB a*, b* a black-and-white photo's mid tones are given (``tinted_if_monochrome``): a light to
medium skin's; its lightness stays the photo's own."""


def is_monochrome(pixels: np.ndarray) -> bool:
    """Whether 99 % of ``pixels`` (..., 3) sRGB 0..1 (a sample of about 250k) have their channels
    within MONOCHROME_SPREAD of each other: black and white."""
    step = max(1, int(np.sqrt(pixels.shape[0] * pixels.shape[1] / 250_000)))  # a sample is enough
    r, g, b = (pixels[::step, ::step, k] for k in range(3))
    spread = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
    return float(np.percentile(spread, 99)) < MONOCHROME_SPREAD


def tinted_if_monochrome(portrait: np.ndarray) -> tuple[np.ndarray, bool]:
    """A black-and-white ``portrait`` (H, W, 3) sRGB 0..1 with a neutral skin tone over its own light
    and shade, and True; any other photo as it is, and False.

    Black and white: 99 % of the pixels (a sample of about 250k) with their channels within
    MONOCHROME_SPREAD of each other. A grey photo textures a grey head: the skin model, the lips
    (redder than the skin round them) and the hair (colours that are not the skin's) have nothing to
    read. The tint is NEUTRAL_SKIN_AB, fading out towards black (hair, shadows: from L* 40) and white
    (the eyes' whites, highlights: from L* 85), so that lightness alone still parts them from the
    skin."""
    if not is_monochrome(portrait):
        return portrait, False
    lab = to_lab(portrait)
    lightness = lab[..., 0]
    amount = np.clip(lightness / 40.0, 0.0, 1.0) * np.clip((100.0 - lightness) / 15.0, 0.0, 1.0)
    lab[..., 1:] = amount[..., None] * NEUTRAL_SKIN_AB
    return from_lab(lab).astype(np.float32), True


def load_texture(path: str | os.PathLike) -> np.ndarray:
    """Read a texture at full size as float32 (H, W, 3) 0..1 (alpha dropped, greyscale expanded).

    Raises the same typed errors as load_portrait, their messages naming a texture.
    """
    array, _ = _decode(Path(path), None, "texture")
    if array.shape[2] in (2, 4):
        array = array[..., :-1]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array, dtype=np.float32)


def _quantise(image: np.ndarray, bit_depth: int) -> np.ndarray:
    """``image`` as the PNG's integers, channels in OpenCV's order (BGR(A)); (H, W) stays (H, W).

    Floats are clamped to 0..1 (NaN to 0) and rounded half up, in float32: one compiled pass over
    both cores (numpy's clamp, scale, offset, cast and channel swap, each a pass of its own, took
    0.45 s of a 4096² texture's save)."""
    image = np.asarray(image)
    order = np.array([2, 1, 0, 3][: image.shape[2]] if image.ndim == 3 else [0], np.int64)
    if image.dtype == np.uint8:
        pixels = image.astype(np.uint16) * 257 if bit_depth == 16 else image
    elif image.dtype == np.uint16:
        pixels = image if bit_depth == 16 else ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"save_png: unsupported dtype {image.dtype}; use float 0..1, uint8 or uint16")
    else:
        values = np.ascontiguousarray(image, np.float32)
        planes = values.reshape(values.shape[0], values.shape[1], -1)
        out = np.empty(planes.shape, np.uint16 if bit_depth == 16 else np.uint8)
        _quantise_kernel(planes, order, np.float32(65535 if bit_depth == 16 else 255), out)
        return out.reshape(image.shape)
    return pixels[..., order] if pixels.ndim == 3 else pixels


def warm_up() -> None:
    """Load the compiled quantisation (numba's on-disk cache) ahead of the first texture's save."""
    _quantise(np.zeros((1, 1, 3), np.float32), 8)


@njit(cache=True, parallel=True)
def _quantise_kernel(values: np.ndarray, order: np.ndarray, peak: np.float32, out: np.ndarray) -> None:
    """``out[i, j, k] = round(clamp(values[i, j, order[k]]) * peak)`` with numpy's float32 steps:
    NaN and below 0 to 0, above 1 to 1, times ``peak``, plus one half, truncated."""
    half, one, zero = np.float32(0.5), np.float32(1.0), np.float32(0.0)
    for i in prange(values.shape[0]):
        for j in range(values.shape[1]):
            for k in range(order.shape[0]):
                v = values[i, j, order[k]]
                if not v > zero:  # NaN too
                    v = zero
                elif v > one:
                    v = one
                out[i, j, k] = np.float32(v * peak) + half


def ordinary_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0666 less the process umask (0644 usually). Files written
    through a temporary one (``mkstemp``: 0600; safetensors' writer likewise) get it, so other users
    and farm nodes on shared storage can read them."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def save_png(path: str | os.PathLike, image: np.ndarray, bit_depth: int = 8) -> Path:
    """Write an RGB(A) or greyscale image as PNG, atomically; returns the path written.

    ``image``: float 0..1 (H, W), (H, W, 3) or (H, W, 4), or uint8/uint16 (converted to ``bit_depth``).
    The file is written to a temporary name in the same folder and renamed over ``path``, so a reader
    never sees half a PNG and a failed write leaves any previous file untouched. Missing folders are
    created. Raises AvatarTexError OUTPUT_NOT_WRITABLE naming the folder when it cannot be written.
    """
    import cv2

    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    path = Path(path)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"save_png: expected (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    pixels = _quantise(array, bit_depth)  # in OpenCV's channel order, BGR(A)
    # Level 1 with run-length matching: a third faster than level 3 on a 4096² texture, and smaller
    # (textures are smooth, with long padded runs).
    flags = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(pixels), flags)
    if not ok:
        raise ValueError(f"save_png: OpenCV could not encode a {pixels.shape} {pixels.dtype} image")

    folder = path.parent if str(path.parent) else Path(".")
    not_writable = AvatarTexError(
        ErrorCode.OUTPUT_NOT_WRITABLE,
        f"Cannot write {path.name!r} into the folder {str(folder)!r}.",
        "Choose an output folder you can write to (and check the disk is not full).",
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError:
        raise not_writable from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(encoded.tobytes())
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_name, ordinary_file_mode())  # mkstemp creates 0600 files
        os.replace(temp_name, path)
    except OSError:
        try:
            os.unlink(temp_name)
        except OSError:
            pass
        raise not_writable from None
    except BaseException:
        try:
            os.unlink(temp_name)
        except OSError:
            pass
        raise
    return path
