"""The head atlas (layout, mirror, charts) and the bake into a mesh's own UVs (seam-free, padded)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from avatartex.atlas import BAND, CHIN, CROWN, HeadFrame, build_atlas, directions, harmonise_charts
from avatartex.bake import bake, uv_surface
from avatartex.mesh import Mesh, unwrap, validate
from avatartex.metrics import seam_edges, seam_error

IDENTITY = HeadFrame(np.zeros(3), np.eye(3), 1.0)


@pytest.fixture(scope="module")
def sphere():
    s = trimesh.creation.icosphere(subdivisions=5, radius=1.5)
    mesh = validate(Mesh(s.vertices.astype(np.float32), s.faces.astype(np.int32), None), require_uvs=False)
    return unwrap(mesh)


@pytest.fixture(scope="module")
def sphere_atlas(sphere):
    return build_atlas(sphere.positions, sphere.triangles, sphere.normals, IDENTITY, 256)


def smooth_color(points: np.ndarray) -> np.ndarray:
    """A colour that varies smoothly over the surface (so any seam shows as a jump)."""
    p = np.asarray(points, np.float64)
    return np.stack(
        [
            0.5 + 0.3 * np.sin(2 * p[:, 0]),
            0.5 + 0.3 * np.cos(1.5 * p[:, 1]),
            0.5 + 0.2 * np.sin(p[:, 2] + p[:, 0]),
        ],
        axis=1,
    ).astype(np.float32)


def test_every_chart_is_filled_and_texels_sit_where_the_layout_says(sphere_atlas):
    g = sphere_atlas
    band = g.chart == BAND
    assert band[: g.band_rows].mean() > 0.99
    for cap in (CROWN, CHIN):
        cx, cy = g.layout.cap_center(cap)
        yy, xx = np.mgrid[0 : g.size, 0 : g.size]
        disc = (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 < (0.95 * g.layout.cap_radius) ** 2
        assert (g.chart[disc] == cap).mean() > 0.99
    # Band texels show the surface point in the direction the layout assigns to them.
    theta, phi = directions(g.positions[band])
    xy = g.layout.band_xy(theta, phi)
    rows, cols = np.nonzero(band)
    err_x = np.abs((xy[:, 0] - (cols + 0.5) + g.size / 2) % g.size - g.size / 2)
    assert np.percentile(err_x, 99) < 1.0 and np.percentile(np.abs(xy[:, 1] - (rows + 0.5)), 99) < 1.0
    # Normals of a sphere point outward.
    assert (np.einsum("ij,ij->i", g.normals[band], g.positions[band] / 1.5) > 0.99).mean() > 0.99


def test_mirror_is_the_symmetry_plane(sphere_atlas):
    g = sphere_atlas
    both = g.mask & g.mirror(g.mask)
    mirrored = g.mirror(g.positions)
    np.testing.assert_allclose(mirrored[both][:, 0], -g.positions[both][:, 0], atol=0.03)
    np.testing.assert_allclose(mirrored[both][:, 1:], g.positions[both][:, 1:], atol=0.03)
    np.testing.assert_array_equal(g.mirror(g.mirror(g.positions)), g.positions)


def test_bake_is_seam_free_and_faithful(sphere, sphere_atlas):
    g = sphere_atlas
    atlas_color = np.zeros((g.size, g.size, 3), np.float32)
    atlas_color[g.mask] = smooth_color(g.positions[g.mask])
    surface = uv_surface(sphere.positions, sphere.triangles, sphere.normals, sphere.uvs, 512)
    texture = bake(g, atlas_color, surface)
    expected = smooth_color(surface.positions)
    assert np.abs(texture[surface.mask] - expected).mean() < 2 / 255
    assert len(seam_edges(sphere.positions, sphere.triangles, sphere.uvs)[0]) > 50
    assert seam_error(texture, sphere.positions, sphere.triangles, sphere.uvs) < 1.0
    # A texture that ignores the surface (a UV gradient) has large seam jumps: the metric can fail.
    yy, xx = np.mgrid[0:512, 0:512] / 512.0
    gradient = np.stack([xx, yy, xx * yy], -1).astype(np.float32)
    assert seam_error(gradient, sphere.positions, sphere.triangles, sphere.uvs) > 10


def test_padding_fills_around_islands(sphere, sphere_atlas):
    g = sphere_atlas
    atlas_color = np.full((g.size, g.size, 3), 0.8, np.float32)
    surface = uv_surface(sphere.positions, sphere.triangles, sphere.normals, sphere.uvs, 512)
    texture = bake(g, atlas_color, surface, padding=4, background=(0.0, 0.0, 0.0))
    from scipy import ndimage

    ring = ndimage.binary_dilation(surface.mask, iterations=4) & ~surface.mask
    assert np.allclose(texture[ring], 0.8, atol=1e-5)
    far = ~ndimage.binary_dilation(surface.mask, iterations=8)
    assert far.any() and np.allclose(texture[far], 0.0)


def test_harmonise_removes_a_cap_offset(sphere_atlas):
    g = sphere_atlas
    color = np.zeros((g.size, g.size, 3), np.float32)
    color[g.mask] = smooth_color(g.positions[g.mask])
    shifted = color.copy()
    shifted[g.chart == CROWN] += 0.2
    fixed = harmonise_charts(g, shifted)
    crown = g.chart == CROWN
    assert np.abs(shifted[crown] - color[crown]).mean() > 0.19
    assert np.abs(fixed[crown] - color[crown]).mean() < 0.03


def test_harmonise_reads_the_band_only(sphere_atlas):
    """The ring's band colour comes from band rows: a tap past the band's last row must not read the
    cap drawn below it (a bright cap once leaked into the chin's ring)."""
    g = sphere_atlas
    color = np.full((g.size, g.size, 3), 0.5, np.float32)
    color[g.band_rows :] = 1.0  # the caps' part of the image, whatever the cap texels hold
    fixed = harmonise_charts(g, color)
    for cap in (CROWN, CHIN):
        ids = g.tri_id[g.chart == cap]
        ring = np.zeros(g.chart.shape, bool)
        ring[g.chart == cap] = g.triangle_chart[ids] == BAND
        assert ring.any()
        np.testing.assert_allclose(fixed[ring], 0.5, atol=1e-6)


def test_harmonise_reads_the_bands_surface_only(sphere_atlas):
    """Near the band's top and bottom rows its charts end in teeth (the triangles drawn there), and a
    ring texel's band point can lie past them or past the band's edge: read there, whatever the
    stages left between the teeth went into the cap (with scalp=hair, a dark "M" drawn into the hair
    on the crown's front). Those ring texels keep the cap's own colour."""
    g = sphere_atlas
    color = np.full((g.size, g.size, 3), 0.5, np.float32)
    band = np.zeros(g.mask.shape, bool)
    band[: g.band_rows] = True
    color[band & ~g.mask] = 1.0  # between the band's teeth, not the surface's
    assert (band & ~g.mask)[: g.band_rows // 8].any()
    fixed = harmonise_charts(g, color)
    caps = (g.chart == CROWN) | (g.chart == CHIN)
    assert np.abs(fixed[caps] - 0.5).max() < 1e-3, np.abs(fixed[caps] - 0.5).max()


# -- the compiled filters reproduce the numpy formulations they replaced, bit for bit ------------


def _up2_reference(image: np.ndarray, shape: tuple[int, int], wrap: bool) -> np.ndarray:
    h, w = shape
    rows = np.empty((h,) + image.shape[1:], np.float32)
    rows[0::2] = image[: (h + 1) // 2]
    below = np.concatenate([image[1:], image[-1:]], axis=0)
    rows[1::2] = 0.5 * (image + below)[: h // 2]
    out = np.empty((h, w) + image.shape[2:], np.float32)
    out[:, 0::2] = rows[:, : (w + 1) // 2]
    right = np.concatenate([rows[:, 1:], rows[:, :1] if wrap else rows[:, -1:]], axis=1)
    out[:, 1::2] = 0.5 * (rows + right)[:, : w // 2]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [18, 17])
def test_upsampling_matches_its_numpy_formulation(dtype, width: int) -> None:
    """``upsample`` (one compiled pass per chart) against the numpy formulation, odd and even sizes,
    the band wrapping and the caps not, float32 and float64 input."""
    from avatartex.atlas_filters import upsample

    rows, height = 13, 22  # a band of 13 rows (7 coarse), caps of 9 (5 coarse)
    coarse = np.random.default_rng(0).random((12, (width + 1) // 2, 3)).astype(dtype)
    for image in (coarse, coarse[..., 0]):
        expected = np.concatenate(
            [
                _up2_reference(image[:7], (rows, width), True),
                _up2_reference(image[7:], (height - rows, width), False),
            ]
        )
        np.testing.assert_array_equal(upsample(image, 7, (height, width), rows), expected)


@pytest.mark.parametrize("shape", [(64, 128, 3), (33, 64), (40, 16, 6), (9, 6, 3), (12, 9, 2)])
def test_wrapped_pyramid_step_is_the_circular_filter(shape: tuple[int, ...]) -> None:
    """``_down2`` on the band (columns wrap): the binomial blur with circular columns and reflected
    rows, decimated — against the filter written out, wide and narrow, odd and even sizes."""
    from avatartex.atlas_filters import _down2

    image = np.random.default_rng(1).random(shape).astype(np.float32)
    h, w = shape[:2]
    taps = np.array([1, 4, 6, 4, 1], np.float64) / 16
    rows = np.concatenate([image[2:0:-1], image, image[-2:-4:-1]], axis=0).astype(np.float64)
    blurred = sum(t * rows[i : i + h] for i, t in enumerate(taps))
    blurred = sum(t * np.roll(blurred, 2 - i, axis=1) for i, t in enumerate(taps))
    np.testing.assert_allclose(_down2(image, True), blurred[::2, ::2], atol=2e-6)


def test_symmetric_completion_matches_its_numpy_formulation(sphere_atlas) -> None:
    from avatartex.atlas_filters import symmetric_completion

    g = sphere_atlas
    rng = np.random.default_rng(1)
    values = rng.random((g.size, g.size, 3)).astype(np.float32)
    confidence = (rng.random((g.size, g.size)) * (rng.random((g.size, g.size)) > 0.3)).astype(np.float32)
    mirrored_conf = g.mirror(confidence)
    gain = np.clip(mirrored_conf - confidence, 0.0, 1.0) * np.float32(0.7)
    total = confidence + gain
    mixed = confidence[..., None] * values + gain[..., None] * g.mirror(values)
    mixed = mixed / np.maximum(total, 1e-6)[..., None]
    expected = np.where(total[..., None] > 1e-6, mixed, values).astype(np.float32)
    got, got_total = symmetric_completion(values, confidence, g, 0.7)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got_total, total)
    flat, _ = symmetric_completion(values[..., 0], confidence, g, 0.7)
    np.testing.assert_array_equal(flat, expected[..., 0])


def test_the_photo_on_texels_the_atlas_cannot_hold_keeps_its_pattern_and_the_fills_tone() -> None:
    """``bake._put_photo``: a photo read under a shadow the de-lighting missed (dark on one side, at a
    scale of eye distances) over a flat fill: the result keeps the photo's fine pattern and the
    fill's tone at large scales (the shadow gone), in proportion to the photo's confidence."""
    import cv2
    from avatartex.bake import PHOTO_TONE_SIGMA_IOD, SurfacePhoto, UVSurface, _put_photo

    n, spacing = 128, 0.01
    rows, cols = np.mgrid[0:n, 0:n]
    positions = np.stack([cols * spacing, rows * spacing, np.zeros((n, n))], -1).reshape(-1, 3)
    surface = UVSurface(
        np.zeros((n, n), np.int32),
        np.full((n, n, 3), 1 / 3, np.float32),
        positions,
        positions * 0 + (0, 0, 1),
    )
    iod = 4.0 * spacing / PHOTO_TONE_SIGMA_IOD  # the tone's Gaussian: 4 texels
    pattern = 1.0 + 0.2 * np.sin(cols * 2.1) * np.cos(rows * 1.7)  # a texel or two
    shadow = 0.4 + 0.6 * cols / (n - 1)  # across the whole patch
    photo_rgb = (0.5 * pattern * shadow)[..., None].repeat(3, -1).reshape(-1, 3).astype(np.float32)
    for confidence in (1.0, 0.5):
        texture = np.full((n, n, 3), 0.5, np.float32)
        index = np.arange(n * n)
        conf = np.full(n * n, confidence, np.float32)
        _put_photo(texture, surface, SurfacePhoto(index, photo_rgb, conf, np.zeros((n * n, 2))), iod)
        out = texture[..., 0]
        inner = (slice(16, -16), slice(16, -16))
        large = cv2.GaussianBlur(out, (0, 0), 8.0)[inner]
        fine = (out - cv2.GaussianBlur(out, (0, 0), 2.0))[inner]
        truth_fine = (pattern - cv2.GaussianBlur(pattern, (0, 0), 2.0))[inner]
        assert np.abs(large - 0.5).max() < 0.03  # the shadow (0.2 to 0.5) is gone
        assert np.corrcoef(fine.ravel(), truth_fine.ravel())[0, 1] > 0.9
        assert np.std(fine) == pytest.approx(confidence * 0.5 * np.std(truth_fine), rel=0.25)


def test_a_texel_reads_only_its_own_surface_in_the_atlas() -> None:
    """Where the atlas goes over from one surface to another behind it along the same directions (the
    scanned bust's jaw underside, and its chest further out), a chest texel next to that edge read
    both in its bilinear sample: a style's halftone dots under the jaw came out as specks on the
    chest (comic). The jaw's underside painted red in the atlas: the chest texels the atlas holds
    stay white (those it does not hold are filled from their neighbours in the UV map, smoothly)."""
    from avatartex.bake import covered_index, surface_in_atlas
    from avatartex.mesh import load_mesh
    from classic_fixtures import HEAD_GLB, head_atlas

    geo = head_atlas(512)
    mesh = load_mesh(str(HEAD_GLB))
    surface = uv_surface(mesh.positions, mesh.triangles, mesh.normals, mesh.uvs, 512)
    heights = geo.frame.to_head(geo.positions)[..., 1]
    jaw = geo.mask & (heights > -2.6) & (heights < -1.8)
    paint = np.where(jaw[..., None], np.float32([1, 0, 0]), np.float32([1, 1, 1])).astype(np.float32)
    texture = bake(geo, paint, surface).reshape(-1, 3)[covered_index(surface)]
    assert (texture[:, 1] < 0.5).sum() > 1000  # the jaw did bake red
    _, hidden = surface_in_atlas(geo, surface)
    chest = (geo.frame.to_head(surface.positions)[:, 1] < -3.6) & ~hidden
    assert chest.sum() > 4000  # most of the chest in front is still the atlas's (4893 of 9466)
    red = 1.0 - texture[chest, 1]
    assert red.max() < 0.02, (red.max(), int((red > 0.02).sum()))  # before: 0.5, on 438 texels
