"""Rasterisation: coverage rule, barycentrics, depth test, perspective correction, padding."""

from __future__ import annotations

import numpy as np
import pytest
from avatartex.camera import Camera
from avatartex.raster import dilate, interpolate, rasterize_camera, rasterize_triangles, rasterize_uv


def _coverage_count(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """How many triangles cover each pixel, each triangle rasterised on its own."""
    count = np.zeros((height, width), np.int32)
    for tri in points:
        tri_id, _, _ = rasterize_triangles(tri[None], None, height, width)
        count += tri_id >= 0
    return count


def test_single_triangle_pixel_count_matches_area() -> None:
    rng = np.random.default_rng(0)
    for _ in range(10):
        tri = rng.uniform(2, 126, size=(3, 2))
        e1, e2 = tri[1] - tri[0], tri[2] - tri[0]
        area = 0.5 * abs(e1[0] * e2[1] - e1[1] * e2[0])
        perimeter = sum(np.linalg.norm(tri[i] - tri[i - 1]) for i in range(3))
        tri_id, bary, zbuf = rasterize_triangles(tri[None], None, 128, 128)
        covered = tri_id >= 0
        # Sampling error of a convex shape is bounded by about half its perimeter in pixels.
        assert abs(covered.sum() - area) <= 0.5 * perimeter + 1
        assert np.all(bary[covered] >= -1e-6) and np.allclose(bary[covered].sum(-1), 1, atol=1e-5)
        assert np.all(np.isinf(zbuf[~covered]))


def test_exact_triangle_coverage_on_pixel_centres() -> None:
    # Corners on pixel centres: the hypotenuse passes through pixel centres, which the tie rule
    # must give to exactly one of the two triangles of the square.
    a, b, c, d = (0.5, 0.5), (20.5, 0.5), (20.5, 20.5), (0.5, 20.5)
    quad = np.array([[a, b, c], [a, c, d]], np.float64)
    count = _coverage_count(quad, 24, 24)
    # The square spans centres 0.5..20.5 inclusive on both axes: edges shared with the outside
    # keep only one side (top-left style), so exactly 20 x 20 pixels are covered.
    assert count.max() == 1
    assert count.sum() == 400


def test_quad_and_fan_cover_each_pixel_exactly_once() -> None:
    rng = np.random.default_rng(1)
    # A jittered grid, half of its vertices snapped onto pixel centres to provoke ties at
    # edges and at vertices shared by six triangles.
    n, step = 6, 7.0
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float64) * step + 4.0
    verts = np.stack([xs, ys], -1) + rng.uniform(-2, 2, (n, n, 2))
    verts[::2] = np.floor(verts[::2]) + 0.5
    tris = []
    for r in range(n - 1):
        for c in range(n - 1):
            p00, p01, p10, p11 = verts[r, c], verts[r, c + 1], verts[r + 1, c], verts[r + 1, c + 1]
            tris += [[p00, p01, p11], [p00, p11, p10]] if (r + c) % 2 else [[p00, p01, p10], [p01, p11, p10]]
    tris = np.array(tris)
    tris[1::3] = tris[1::3, ::-1]  # mixed winding must not matter
    count = _coverage_count(tris, 48, 48)
    assert count.max() == 1
    # Every pixel whose centre lies strictly inside the grid's hull interior is covered.
    tri_id, _, _ = rasterize_triangles(tris, None, 48, 48)
    assert np.array_equal(tri_id >= 0, count == 1)
    top, bottom = int(verts[0, :, 1].max()) + 1, int(verts[-1, :, 1].min()) - 1
    left, right = int(verts[:, 0, 0].max()) + 1, int(verts[:, -1, 0].min()) - 1
    assert np.all(count[top:bottom, left:right] == 1)


def test_barycentrics_reproduce_linear_attribute() -> None:
    tri = np.array([[[3.2, 5.1], [60.7, 12.3], [20.4, 58.9]]])
    tri_id, bary, _ = rasterize_triangles(tri, None, 64, 64)

    def f(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return 0.3 * x - 1.7 * y + 5.0

    vals = f(tri[0, :, 0], tri[0, :, 1])[None, :, None]  # per-corner (1, 3, 1)
    img = interpolate(vals, None, tri_id, bary)[..., 0]
    rows, cols = np.nonzero(tri_id >= 0)
    expected = f(cols + 0.5, rows + 0.5)
    np.testing.assert_allclose(img[rows, cols], expected, atol=1e-3)
    assert np.all(img[tri_id < 0] == 0)


def test_interpolate_per_vertex_equals_per_corner() -> None:
    positions = np.array([[2.0, 2.0], [30.0, 3.0], [28.0, 29.0], [3.0, 30.0]])
    triangles = np.array([[0, 1, 2], [0, 2, 3]])
    values = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 3.0], [5.0, -1.0]])
    tri_id, bary, _ = rasterize_triangles(positions[triangles], None, 32, 32)
    a = interpolate(values, triangles, tri_id, bary)
    b = interpolate(values[triangles], None, tri_id, bary)
    assert a.shape == (32, 32, 2) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_z_test_picks_nearer_triangle_in_either_order() -> None:
    big = np.array([[1.0, 1.0], [31.0, 1.0], [1.0, 31.0]])
    small = np.array([[4.0, 4.0], [20.0, 4.0], [4.0, 20.0]])
    for order in ((0, 1), (1, 0)):
        pts = np.stack([big, small])[list(order)]
        dep = np.array([[5.0] * 3, [2.0] * 3])[list(order)]
        tri_id, _, zbuf = rasterize_triangles(pts, dep, 32, 32)
        small_index = order.index(1)
        assert tri_id[10, 10] == small_index and zbuf[10, 10] == pytest.approx(2.0)
        assert tri_id[25, 3] == 1 - small_index and zbuf[25, 3] == pytest.approx(5.0)
        # The farther triangle drawn last must not overwrite: flip the depths and the big one wins.
        tri_id2, _, _ = rasterize_triangles(pts, dep[:, ::-1][::-1], 32, 32)
        assert tri_id2[10, 10] == 1 - small_index


def test_degenerate_and_nan_triangles_are_skipped() -> None:
    pts = np.array(
        [
            [[1.0, 1.0], [10.0, 10.0], [20.0, 20.0]],  # collinear
            [[np.nan, 1.0], [10.0, 1.0], [1.0, 10.0]],
            [[1.0, 1.0], [1e30, 1.0], [1.0, 1e30]],  # huge but finite: clipped, covers the image
        ]
    )
    tri_id, _, _ = rasterize_triangles(pts, None, 16, 16)
    assert np.all(tri_id[1:, 1:] == 2)
    assert np.all(tri_id[0] == -1) and np.all(tri_id[:, 0] == -1)


def test_rasterize_uv_texel_centres() -> None:
    # A UV triangle covering the lower-left half (below the diagonal u + v = 1).
    uvs = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    size = 8
    tri_id, bary = rasterize_uv(uvs, size)
    uv = interpolate(uvs, None, tri_id, bary)
    r, c = np.mgrid[0:size, 0:size]
    u, v = (c + 0.5) / size, 1 - (r + 0.5) / size
    inside = u + v < 1
    assert np.array_equal(tri_id[inside], np.zeros(inside.sum()))
    assert np.all(tri_id[u + v > 1] == -1)
    np.testing.assert_allclose(uv[inside], np.stack([u, v], -1)[inside], atol=1e-5)


def test_perspective_correct_slanted_quad() -> None:
    # Plane z = 4 + 0.5 x in camera space (identity pose), quad over x, y in [-1, 1].
    cam = Camera(fx=80.0, fy=80.0, cx=32.0, cy=32.0, R=np.eye(3), t=np.zeros(3), width=64, height=64)
    xy = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    positions = np.column_stack([xy, 4.0 + 0.5 * xy[:, 0]])
    triangles = np.array([[0, 1, 2], [0, 2, 3]])
    tri_id, bary, depth = rasterize_camera(positions, triangles, cam)
    covered = tri_id >= 0
    assert covered.sum() > 1200
    rows, cols = np.nonzero(covered)
    # The ray through pixel (c, r) is (a, b, 1) with a = (c + .5 - cx) / fx; it meets the plane at
    # z = 4 / (1 - 0.5 a).
    a = (cols + 0.5 - cam.cx) / cam.fx
    b = (rows + 0.5 - cam.cy) / cam.fy
    z = 4.0 / (1.0 - 0.5 * a)
    np.testing.assert_allclose(depth[rows, cols], z, rtol=1e-5)
    # Perspective-correct barycentrics reproduce world x (the quad's u = (x + 1) / 2) exactly,
    # where screen-space interpolation would be off by up to several percent here.
    world = interpolate(positions, triangles, tri_id, bary)
    np.testing.assert_allclose(world[rows, cols, 0], a * z, atol=1e-4)
    np.testing.assert_allclose(world[rows, cols, 1], b * z, atol=1e-4)
    np.testing.assert_allclose(world[rows, cols, 2], z, atol=1e-4)


def test_camera_unit_cube_head_on() -> None:
    import trimesh

    cube = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    # Camera at z = 5 looking at the origin: the front face (z = 0.5) is 4.5 away, so with
    # f = 90 its half-width is 90 * 0.5 / 4.5 = 10 px around the centre 50 -> pixels 40..59.
    cam = Camera.look_at(np.array([0, 0, 5.0]), np.zeros(3), np.array([0, 1.0, 0]), 60.0, 100, 100)
    cam.fx = cam.fy = 90.0
    tri_id, bary, depth = rasterize_camera(cube.vertices, cube.faces, cam)
    covered = tri_id >= 0
    expected = np.zeros((100, 100), bool)
    expected[40:60, 40:60] = True
    assert np.array_equal(covered, expected)
    np.testing.assert_allclose(depth[covered], 4.5, rtol=1e-6)
    # The visible triangles are the two of the +z face.
    normals = cube.face_normals[np.unique(tri_id[covered])]
    np.testing.assert_allclose(normals, [[0, 0, 1]] * len(normals), atol=1e-9)


def test_camera_skips_triangles_behind_near_plane() -> None:
    cam = Camera(fx=10.0, fy=10.0, cx=8.0, cy=8.0, R=np.eye(3), t=np.zeros(3), width=16, height=16)
    positions = np.array(
        [
            [-1.0, -1.0, 2.0],
            [1.0, -1.0, 2.0],
            [0.0, 1.0, -0.5],
            [-1.0, -1.0, 3.0],
            [1.0, -1.0, 3.0],
            [0.0, 1.0, 3.0],
        ]
    )
    tri_id, _, _ = rasterize_camera(positions, np.array([[0, 1, 2], [3, 4, 5]]), cam)
    assert 0 not in np.unique(tri_id) and 1 in np.unique(tri_id)


def test_dilate_fills_exactly_n_rings() -> None:
    img = np.zeros((20, 30, 3), np.float32)
    mask = np.zeros((20, 30), bool)
    mask[:, :10] = True
    img[:, :10] = np.arange(10, dtype=np.float32)[None, :, None]
    out, grown = dilate(img, mask, 3)
    assert np.array_equal(grown, np.arange(30)[None, :].repeat(20, 0) < 13)
    np.testing.assert_array_equal(out[:, 10:13], 9.0)  # nearest covered column is 9
    np.testing.assert_array_equal(out[:, 13:], 0.0)
    np.testing.assert_array_equal(out[:, :10], img[:, :10])
    # A single texel grows into the Euclidean disc of radius 2: 13 texels.
    one = np.zeros((9, 9), bool)
    one[4, 4] = True
    _, disc = dilate(np.ones((9, 9, 1)), one, 2)
    assert disc.sum() == 13
    # Zero padding and an empty mask are no-ops.
    assert np.array_equal(dilate(img, mask, 0)[1], mask)
    assert not dilate(img, np.zeros_like(mask), 4)[1].any()
