"""Portrait/texture reading and atomic PNG writing (avatartex.image_io)."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from avatartex import image_io
from avatartex.image_io import load_portrait, load_texture, save_png
from avatartex.protocol import AvatarTexError, ErrorCode
from image_fixtures import png_claiming
from PIL import Image, ImageOps


def _pattern(h: int = 40, w: int = 60) -> np.ndarray:
    """An asymmetric uint8 RGB image, so every flip/rotation is distinguishable."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x * 7 + y * 3) % 256], -1).astype(np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    image = Image.fromarray(_pattern())
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"
    image.save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)), np.float32) / 255
    loaded, info = load_portrait(path)
    assert loaded.shape == expected.shape
    assert np.abs(loaded - expected).max() < 1e-6
    assert info["orientation"] == orientation
    assert info["original_size"] == (expected.shape[1], expected.shape[0])


def test_a_phones_heic_photo_reads_upright_with_its_lens(tmp_path: Path, astronaut) -> None:
    """iPhones save HEIC: stored as taken (here turned, EXIF orientation 6) with the lens's 35 mm
    equivalent focal length. It reads as the same upright photo a JPEG of it gives, and its lens
    gives the field of view."""
    photo = np.round(astronaut[:, 56:456] * 255).astype(np.uint8)
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(photo, 1)))  # taken with the phone turned
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0xA405] = 26  # FocalLengthIn35mmFilm: an iPhone's main camera
    image_io._heif_registered()
    heic, jpeg = tmp_path / "IMG_0001.HEIC", tmp_path / "IMG_0001.jpg"
    stored.save(heic, exif=exif.tobytes(), quality=92)
    stored.save(jpeg, exif=exif.tobytes(), quality=92)
    from_heic, info = load_portrait(heic)
    from_jpeg, jpeg_info = load_portrait(jpeg)
    assert from_heic.shape == from_jpeg.shape == (512, 400, 3)
    upright = photo.astype(np.float32) / 255
    psnr = 10 * np.log10(1.0 / np.mean((from_heic - upright) ** 2))
    assert psnr > 30, psnr
    assert info["format"] == "HEIF" and info["focal_35mm"] == 26
    assert info["fov_y_deg_exif"] == pytest.approx(jpeg_info["fov_y_deg_exif"], abs=0.01)


def test_heic_without_pillow_heif_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "IMG_0002.heic"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic")
    monkeypatch.setattr(image_io, "_heif_registered", lambda: False)
    with pytest.raises(AvatarTexError) as err:
        load_portrait(path)
    assert err.value.code == ErrorCode.PORTRAIT_UNREADABLE and "pillow-heif" in err.value.message
    assert "JPEG" in err.value.hint


def test_16bit_rgb_png_and_tiff_keep_full_precision(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    for name in ("a.png", "a.tif"):
        cv2.imwrite(str(tmp_path / name), data[..., ::-1])
        loaded, info = load_portrait(tmp_path / name)
        assert info["bit_depth"] == 16
        # 8-bit truncation would be off by up to 1/255; full precision is exact to float32 rounding.
        assert np.abs(loaded - data / 65535.0).max() < 1e-6


def test_16bit_grey_png(tmp_path: Path) -> None:
    data = np.arange(600, dtype=np.uint16).reshape(20, 30) * 100
    cv2.imwrite(str(tmp_path / "g.png"), data)
    loaded, info = load_portrait(tmp_path / "g.png")
    assert loaded.shape == (20, 30, 3) and info["bit_depth"] == 16
    assert np.abs(loaded[..., 1] - data / 65535.0).max() < 1e-6


def test_grey_palette_and_cmyk_become_rgb(tmp_path: Path) -> None:
    rgb = _pattern()
    Image.fromarray(rgb).convert("L").save(tmp_path / "l.png")
    grey, _ = load_portrait(tmp_path / "l.png")
    assert grey.shape == (40, 60, 3) and np.array_equal(grey[..., 0], grey[..., 2])
    Image.fromarray(rgb).quantize(64).save(tmp_path / "p.png")
    pal, _ = load_portrait(tmp_path / "p.png")
    assert pal.shape == (40, 60, 3) and np.abs(pal - rgb / 255.0).mean() < 0.05
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    cmyk, _ = load_portrait(tmp_path / "c.jpg")
    assert cmyk.shape == (40, 60, 3) and np.abs(cmyk - rgb / 255.0).mean() < 0.05


def test_rgba_composited_on_grey_with_warning(tmp_path: Path) -> None:
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :5, 3] = 255  # left half opaque red, right half fully transparent
    Image.fromarray(rgba).save(tmp_path / "a.png")
    image, info = load_portrait(tmp_path / "a.png")
    assert np.allclose(image[:, 0], [1, 0, 0]) and np.allclose(image[:, -1], 0.5)
    assert any("transparent" in w for w in info["warnings"])
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "b.png")
    assert load_portrait(tmp_path / "b.png")[1]["warnings"] == []
    assert load_texture(tmp_path / "b.png").shape == (10, 10, 3)


def test_huge_jpeg_downscaled_faithfully(tmp_path: Path) -> None:
    g = Image.linear_gradient("L").resize((8000, 8000))
    Image.merge("RGB", (g, g.transpose(Image.Transpose.ROTATE_90), g)).save(tmp_path / "big.jpg", quality=70)
    image, info = load_portrait(tmp_path / "big.jpg", max_side=2048)
    assert image.shape == (2048, 2048, 3) and info["original_size"] == (8000, 8000)
    assert info["scale"] == pytest.approx(0.256)
    # Gradient content survives the draft decode + Lanczos: top row dark, bottom row bright.
    assert image[:8, :, 0].mean() < 0.02 and image[-8:, :, 0].mean() > 0.98


def test_decompression_bomb_is_typed_error(tmp_path: Path) -> None:
    (tmp_path / "bomb.png").write_bytes(png_claiming(40000, 40000))
    with pytest.raises(AvatarTexError) as err:
        load_portrait(tmp_path / "bomb.png")
    assert err.value.code == ErrorCode.PORTRAIT_UNREADABLE and "bomb.png" in err.value.message
    assert image_io.MAX_PORTRAIT_PIXELS >= 8000 * 8000


def test_missing_unreadable_truncated(tmp_path: Path) -> None:
    with pytest.raises(AvatarTexError) as err:
        load_portrait(tmp_path / "nope.jpg")
    assert err.value.code == ErrorCode.PORTRAIT_MISSING and "nope.jpg" in err.value.message and err.value.hint
    (tmp_path / "text.png").write_text("hello, not a picture")
    with pytest.raises(AvatarTexError) as err:
        load_portrait(tmp_path / "text.png")
    assert err.value.code == ErrorCode.PORTRAIT_UNREADABLE and "text.png" in err.value.message
    assert err.value.hint
    Image.fromarray(_pattern(200, 200)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(AvatarTexError) as err:
        load_portrait(tmp_path / "cut.jpg")
    assert err.value.code == ErrorCode.PORTRAIT_UNREADABLE


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_save_png_roundtrip(tmp_path: Path, channels: int, bit_depth: int) -> None:
    rng = np.random.default_rng(0)
    image = rng.random((17, 23, channels)).astype(np.float32)
    path = save_png(tmp_path / "out" / "t.png", image, bit_depth=bit_depth)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == (np.uint16 if bit_depth == 16 else np.uint8)
    peak = 65535 if bit_depth == 16 else 255
    back = raw[..., [2, 1, 0, 3][:channels]] / peak
    assert np.abs(back - image).max() <= 0.5 / peak + 1e-7
    if channels == 3:
        assert np.abs(load_texture(path) - image).max() <= 0.5 / peak + 1e-6
    assert [p.name for p in path.parent.iterdir()] == ["t.png"]  # no temp file left


def test_save_png_failure_leaves_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_png(tmp_path / "t.png", np.zeros((4, 4, 3), np.float32))
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(AvatarTexError) as err:
        save_png(path, np.ones((4, 4, 3), np.float32))
    assert err.value.code == ErrorCode.OUTPUT_NOT_WRITABLE and str(tmp_path) in err.value.message
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.png"]


def test_save_png_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where the folder should be: not writable even as root
    with pytest.raises(AvatarTexError) as err:
        save_png(blocker / "sub" / "t.png", np.zeros((4, 4, 3), np.float32))
    assert err.value.code == ErrorCode.OUTPUT_NOT_WRITABLE and "sub" in err.value.message


def test_saved_png_has_ordinary_permissions(tmp_path):
    """A texture is written through a private temporary file but ends up readable like any file."""
    import os

    from avatartex.image_io import save_png

    umask = os.umask(0o022)
    try:
        path = save_png(tmp_path / "t.png", np.zeros((4, 4, 3), np.float32))
    finally:
        os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_a_black_and_white_photo_gets_a_skin_tone_over_its_own_light_and_shade(astronaut) -> None:
    """Greyscale (and its JPEG's chroma noise) is told from colour, tinted in the mid tones only, its
    lightness kept; a colour photo (the astronaut, even a dull one) is left as it is."""
    from avatartex.imaging import to_lab

    grey = np.repeat(astronaut.mean(axis=2, keepdims=True), 3, axis=2).astype(np.float32)
    noisy = np.clip(grey + np.random.default_rng(0).normal(0, 0.004, grey.shape), 0, 1).astype(np.float32)
    for photo in (grey, noisy):
        tinted, monochrome = image_io.tinted_if_monochrome(photo)
        assert monochrome
        before, after = to_lab(photo), to_lab(tinted)
        assert np.abs(after[..., 0] - before[..., 0]).max() < 3.0  # the photo's light and shade
        mid = (before[..., 0] > 45) & (before[..., 0] < 80)
        assert np.allclose(np.median(after[mid][:, 1:], axis=0), image_io.NEUTRAL_SKIN_AB, atol=1.5)
        assert np.hypot(after[..., 1], after[..., 2])[before[..., 0] < 4].max() < 2.5  # blacks stay black
    dull = (0.3 * astronaut + 0.7 * astronaut.mean(axis=2, keepdims=True)).astype(np.float32)
    for photo in (astronaut.astype(np.float32), dull):
        same, monochrome = image_io.tinted_if_monochrome(photo)
        assert not monochrome and same is photo


@pytest.mark.parametrize("shape", [(31, 17), (31, 17, 3), (31, 17, 4)])
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_save_png_quantises_as_numpy_rounds_half_up(tmp_path: Path, shape: tuple, bit_depth: int) -> None:
    """The written integers are numpy's clamp-scale-round in float32, NaN and -inf to 0, +inf to
    the peak, for greyscale, RGB and RGBA alike, and in the file's own channel order."""
    rng = np.random.default_rng(1)
    image = (rng.random(shape) * 1.4 - 0.2).astype(np.float32)
    peak = 65535 if bit_depth == 16 else 255
    # Values that land exactly on (or a float32 step beside) a rounding boundary.
    image.reshape(-1)[:40] = (np.arange(40, dtype=np.float32) + np.float32(0.5)) / np.float32(peak)
    image.reshape(-1)[40:44] = [np.nan, np.inf, -np.inf, -0.0]
    expected = np.fmin(np.fmax(image, np.float32(0)), np.float32(1)) * np.float32(peak) + np.float32(0.5)
    expected = expected.astype(np.uint16 if bit_depth == 16 else np.uint8)
    raw = cv2.imread(str(save_png(tmp_path / "q.png", image, bit_depth=bit_depth)), cv2.IMREAD_UNCHANGED)
    if len(shape) == 3:
        raw = raw[..., [2, 1, 0, 3][: shape[2]]]
    assert raw.shape == shape and np.array_equal(raw, expected)
    assert list(expected.reshape(-1)[40:43]) == [0, peak, 0]


def _display_p3_profile() -> bytes:
    """Blender's Display P3 ICC profile (in the bpy wheel the test set-up installs); skips without it."""
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    found = (
        sorted(Path(spec.origin).parent.glob("*/datafiles/colormanagement/icc/srgb_p3d65_display.icc"))
        if spec
        else []
    )
    if not found:
        pytest.skip("no Display P3 ICC profile here (it ships in the bpy wheel: bash scripts/setup.sh)")
    return found[0].read_bytes()


def _with_iccp(png: bytes, profile: bytes) -> bytes:
    """A PNG file's bytes with an iCCP chunk (the profile) after its header chunk."""
    import struct
    import zlib

    body = b"P3\x00\x00" + zlib.compress(profile)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    end_of_header = 8 + 4 + 4 + 13 + 4
    return png[:end_of_header] + chunk + png[end_of_header:]


def test_a_display_p3_photo_is_read_in_srgb_colours(tmp_path: Path, astronaut) -> None:
    """Phones save Display P3 (an iPhone's HEIC and JPEG): its numbers read as sRGB gave a grey-olive
    skin (a*, b* 8.3, 18.3 -> 6.1, 16.0 on the astronaut). Converted through the embedded profile, 8
    and 16 bit, the colours are the sRGB original's; a photo without a profile is read as it is."""
    import io

    from avatartex.imaging import to_lab
    from PIL import ImageCms

    icc = _display_p3_profile()
    p3 = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    original = Image.fromarray((astronaut * 255 + 0.5).astype(np.uint8))
    converted = ImageCms.profileToProfile(original, ImageCms.createProfile("sRGB"), p3, outputMode="RGB")
    converted.save(tmp_path / "p3.png", icc_profile=icc)
    wide = np.asarray(converted).astype(np.uint16) * 257
    _, png16 = cv2.imencode(".png", wide[..., ::-1])
    (tmp_path / "p3_16.png").write_bytes(_with_iccp(png16.tobytes(), icc))
    truth = to_lab(np.asarray(original, np.float32) / 255.0)
    as_numbers = to_lab(np.asarray(converted, np.float32) / 255.0)
    assert np.abs(as_numbers[..., 1:] - truth[..., 1:]).mean() > 2.0  # what ignoring the profile costs
    for name, depth in (("p3.png", 8), ("p3_16.png", 16)):
        image, info = load_portrait(tmp_path / name)
        assert info["bit_depth"] == depth and info["colour_profile"] == "sP3"
        assert np.abs(to_lab(image)[..., 1:] - truth[..., 1:]).mean() < 1.0, name
    original.save(tmp_path / "plain.png")
    assert "colour_profile" not in load_portrait(tmp_path / "plain.png")[1]


def _lzw_tiff(path: Path, stored: np.ndarray, orientation: int) -> None:
    """A 16-bit RGB TIFF, LZW-compressed (OpenCV's encoder), with an orientation tag: tifffile cannot
    write LZW without imagecodecs, nor OpenCV an orientation, so the IFD is written here."""
    import tifffile

    height, width = stored.shape[:2]
    params = [cv2.IMWRITE_TIFF_PREDICTOR, 1, cv2.IMWRITE_TIFF_ROWSPERSTRIP, height]
    encoded = cv2.imencode(".tif", np.ascontiguousarray(stored[..., ::-1]), params)[1].tobytes()
    with tifffile.TiffFile(io.BytesIO(encoded)) as tiff:
        page = tiff.pages[0]
        assert page.compression == 5 and len(page.dataoffsets) == 1
        strip = encoded[page.dataoffsets[0] :][: page.databytecounts[0]]
    entries = [(256, width), (257, height), (258, None), (259, 5), (262, 2), (273, None)]
    entries += [(274, orientation), (277, 3), (278, height), (279, len(strip))]
    bits_at = 8 + 2 + 12 * len(entries) + 4
    places = {258: bits_at, 273: bits_at + 6}
    ifd = struct.pack("<H", len(entries))
    for tag, value in entries:
        if tag in (273, 279):  # LONG
            ifd += struct.pack("<HHII", tag, 4, 1, places.get(tag, value))
        else:  # SHORT, three of them (at bits_at) for BitsPerSample
            ifd += struct.pack("<HHIHH", tag, 3, 3 if tag == 258 else 1, places.get(tag, value), 0)
    body = ifd + b"\0\0\0\0" + struct.pack("<3H", 16, 16, 16) + strip
    path.write_bytes(b"II*\0" + struct.pack("<I", 8) + body)


@pytest.mark.parametrize("encoding", ["uncompressed big-endian", "LZW"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_16bit_tiff_with_an_orientation_tag_reads_upright(
    tmp_path: Path, orientation: int, encoding: str
) -> None:
    """OpenCV turns a TIFF by its tag itself, even asked for the data unchanged: turned upside down
    it was turned twice (read upside down), and turned on its side it failed as "could not be
    decoded" (an LZW file from a camera's raw converter too). Decoded as stored and turned once, at
    full precision."""
    tifffile = pytest.importorskip("tifffile")
    upright = (np.random.default_rng(orientation).random((48, 32, 3)) * 65535).astype(np.uint16)
    turns = {3: 2, 6: 1, 8: -1}[orientation]  # the rotation that, undone by the tag, gives upright
    stored = np.ascontiguousarray(np.rot90(upright, turns))
    path = tmp_path / "photo.tif"
    if encoding == "LZW":
        _lzw_tiff(path, stored, orientation)
    else:
        tag = [(274, "H", 1, orientation, True)]
        tifffile.imwrite(path, stored, photometric="rgb", byteorder=">", extratags=tag)
    image, info = load_portrait(path)
    assert info["bit_depth"] == 16 and image.shape == (48, 32, 3)
    assert np.abs(image - upright / 65535.0).max() < 1e-6
