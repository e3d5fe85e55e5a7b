"""The mesh's ambient occlusion (backend/avatartex/occlusion.py) and the de-lighting that takes the
creases' own darkness out with it (shading.fit_lights, fit_detail_light, classic latent)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import trimesh
from avatartex import atlas_filters as filters
from avatartex.engines.base import AtlasTexture, StageContext
from avatartex.engines.classic.latent import ClassicLatent
from avatartex.imaging import LUMA
from avatartex.occlusion import OPEN, at_texels, directions, vertex_cavity, vertex_occlusion
from avatartex.shading import DirectionalLights, fit_detail_light, fit_lights, fit_shading
from classic_fixtures import HEAD_GLB, head_atlas, make_ctx


def test_directions_cover_the_sphere_evenly() -> None:
    d = directions(400)
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0)
    # As many in every octant, within a few.
    octants = np.unique((d > 0) @ np.array([1, 2, 4]), return_counts=True)[1]
    assert len(octants) == 8 and octants.min() >= 45 and octants.max() <= 55


def test_a_convex_surface_is_open_everywhere() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=3)
    found = vertex_occlusion(sphere.vertices, sphere.faces, sphere.vertex_normals)
    assert found.min() > 0.97, found.min()


def test_a_floor_beside_a_wall_sees_half_the_sky_and_a_closed_box_none() -> None:
    # A floor of 20 x 20 quads with a tall box standing on its middle, and a closed box inside the box.
    floor = trimesh.creation.box(extents=(10.0, 10.0, 0.2))
    floor.apply_translation((0, 0, -0.1))
    floor = floor.subdivide_to_size(0.25)
    wall = trimesh.creation.box(extents=(2.0, 2.0, 8.0))
    wall.apply_translation((0, 0, 4.0))
    scene = trimesh.util.concatenate([floor, wall])
    normals = np.asarray(scene.vertex_normals)
    found = vertex_occlusion(scene.vertices, scene.faces, normals, views=256, size=384)
    top = np.isclose(scene.vertices[:, 2], 0.0) & (np.abs(normals[:, 2]) > 0.99)
    x, y = scene.vertices[:, 0], scene.vertices[:, 1]
    # Floor points at the foot of a wall (not at its corners) see about half of the cosine-weighted sky.
    foot = top & (np.abs(np.abs(x) - 1.1) < 0.15) & (np.abs(y) < 0.5)
    far = top & (np.maximum(np.abs(x), np.abs(y)) > 4.0)
    assert foot.any() and far.any()
    assert 0.4 < float(np.median(found[foot])) < 0.62, np.median(found[foot])
    assert float(np.median(found[far])) > 0.9
    # The floor under the box is closed in.
    under = np.isclose(scene.vertices[:, 2], 0.0) & (np.maximum(np.abs(x), np.abs(y)) < 0.8)
    assert under.any() and found[under].max() < 0.05


def test_texels_read_the_vertices_occlusion_and_open_where_no_surface() -> None:
    triangles = np.array([[0, 1, 2]])
    values = np.array([0.0, 0.5, 1.0], np.float32)
    tri_id = np.array([[0, -1]], np.int32)
    bary = np.array([[[0.2, 0.3, 0.5], [0.0, 0.0, 0.0]]], np.float32)
    out = at_texels(values, triangles, tri_id, bary)
    assert out.shape == (1, 2)
    assert out[0, 0] == pytest.approx(0.65, abs=1e-6) and out[0, 1] == OPEN


def _creases(size: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals of a dome with narrow grooves, and an occlusion darker in the grooves."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size - 0.5
    groove = np.cos(2 * np.pi * 9 * x) * np.cos(2 * np.pi * 7 * y)
    height = 0.6 * np.sqrt(np.clip(0.5 - x * x - y * y, 0, None)) + 0.012 * groove
    gy, gx = np.gradient(height, 1.0 / size)
    normals = np.stack([-gx, -gy, np.ones_like(gx)], axis=-1)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    occlusion = 0.85 + 0.15 * groove  # 0.7 at the bottom of a groove, 1 on its ridges
    return normals.astype(np.float32), occlusion.astype(np.float32)


@pytest.mark.parametrize("occluded", [0.0, 0.7])
def test_the_lights_fit_finds_how_much_of_the_ambient_the_creases_keep_out(occluded: float) -> None:
    normals, occlusion = _creases()
    light = np.array([0.5, 0.6, 0.62]) / np.linalg.norm([0.5, 0.6, 0.62])
    ambient, key = 0.6, 0.4
    truth = ambient * (1 - occluded * (1 - occlusion)) + key * np.clip(normals @ light, 0, None)
    rng = np.random.default_rng(3)
    observed = (truth * (1 + 0.01 * rng.normal(size=truth.shape))).reshape(-1)
    flat, ao = normals.reshape(-1, 3), occlusion.reshape(-1)
    sh, weights = fit_shading(observed, flat, np.ones(len(flat)))
    model, _ = fit_lights(observed, flat, weights, sh, ao)
    assert abs(model.occluded - occluded) < 0.08, model.occluded
    assert abs(model.ambient - ambient) < 0.05 and abs(np.linalg.norm(model.lights[0]) - key) < 0.05
    # Without the occlusion the fit cannot follow the grooves: its error there is several times larger.
    plain, _ = fit_lights(observed, flat, weights, sh)
    error = np.abs(model(flat, ao) - truth.reshape(-1)).mean()
    plain_error = np.abs(plain(flat) - truth.reshape(-1)).mean()
    if occluded > 0:
        assert error < 0.25 * plain_error, (error, plain_error)
    else:
        assert error < 0.01


def test_the_detail_refit_finds_the_occluded_share_a_face_sized_albedo_hides() -> None:
    normals, occlusion = _creases()
    light = np.array([0.0, 0.96, 0.28])
    ambient, key, occluded = 0.5, 0.5, 0.6
    shading = ambient * (1 - occluded * (1 - occlusion)) + key * np.clip(normals @ light, 0, None)
    observed = shading * np.linspace(1.15, 0.85, normals.shape[0])[:, None]  # a paler forehead
    start = DirectionalLights(ambient, (key * light).reshape(1, 3).astype(np.float32), 0.1)
    weight = np.ones(shading.shape, np.float32)
    refined = fit_detail_light(start, observed, normals, weight, sigma=6.0, occlusion=occlusion).lights
    assert abs(refined.occluded - occluded) < 0.1, refined.occluded
    assert np.linalg.norm(refined.lights[0] / refined.ambient - key * light / ambient) < 0.1


@pytest.mark.parametrize("start", [0.5, 1.0])
def test_the_detail_refit_holds_where_texels_are_closed_in_and_out_of_the_light(start: float) -> None:
    """Texels no sky reaches (occlusion 0: inside a mouth, behind an ear) that the key light does not
    reach either have no shading under a share of 1: the refit still finds the light and the share
    (it gave up and kept its start, from a logarithm of zero, before)."""
    normals, occlusion = _creases()
    light = np.array([0.0, 0.96, 0.28])
    ambient, key, occluded = 0.5, 0.5, 0.95
    occlusion = np.where(normals @ light <= 0.05, 0.0, occlusion).astype(np.float32)  # 31 % of them
    shading = ambient * (1 - occluded * (1 - occlusion)) + key * np.clip(normals @ light, 0, None)
    observed = shading * np.linspace(1.15, 0.85, normals.shape[0])[:, None]
    begun = DirectionalLights(ambient, (0.7 * key * light).reshape(1, 3).astype(np.float32), start)
    weight = np.ones(shading.shape, np.float32)
    refined = fit_detail_light(begun, observed, normals, weight, sigma=6.0, occlusion=occlusion).lights
    assert abs(refined.occluded - occluded) < 0.03, refined.occluded
    truth = key * light / ambient
    gap = np.linalg.norm(refined.lights[0] / refined.ambient - truth)
    assert gap < 0.7 * np.linalg.norm(begun.lights[0] / begun.ambient - truth), refined  # 0.6, 0.0


def _scan_occlusion(geo) -> np.ndarray:
    mesh = trimesh.load(HEAD_GLB, force="mesh")
    per_vertex = vertex_occlusion(mesh.vertices, mesh.faces, mesh.vertex_normals)
    return at_texels(per_vertex, mesh.faces, geo.tri_id, geo.bary)


def test_a_soft_lit_photos_crease_darkness_is_taken_out_of_the_albedo() -> None:
    """The scanned head in a soft light (an occluded ambient and a weak key light): with the mesh's
    occlusion the de-lit texture keeps far less of the creases' darkness (eye sockets, the folds
    beside the nose, under the jaw) than the light of the normal alone leaves there."""
    plain = head_atlas(256)
    geo = dataclasses.replace(plain, occlusion=_scan_occlusion(plain))
    light = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])
    shading = 0.65 * geo.occlusion + 0.3 * np.clip(geo.normals @ light, 0, None)
    albedo = np.array([0.72, 0.52, 0.42], np.float32) ** filters.GAMMA
    conf = np.clip((geo.normals[..., 2] - 0.15) / 0.55, 0, 1) * geo.mask
    color = (albedo * shading[..., None]) ** (1 / filters.GAMMA)
    tex = AtlasTexture(np.where(conf[..., None] > 0, color, 0).astype(np.float32), conf.astype(np.float32))
    crease = geo.mask & (conf > 0.5) & (geo.occlusion < 0.85)
    open_skin = geo.mask & (conf > 0.5) & (geo.occlusion > 0.97)
    assert crease.sum() > 200

    def crease_darkness(atlas) -> tuple[float, StageContext]:
        """How much darker the de-lit creases are than the open skin (log luminance), and the context."""
        ctx = make_ctx(atlas)
        out = ClassicLatent._delight(tex.color, tex.confidence, ctx, 1.0)
        lum = np.log(np.maximum((out**filters.GAMMA) @ LUMA, 1e-6))
        return float(np.median(lum[open_skin]) - np.median(lum[crease])), ctx

    with_occlusion, ctx = crease_darkness(geo)
    without, _ = crease_darkness(plain)
    assert without > 0.15, without  # the creases stay ~15 % darker with the normal's light alone
    assert with_occlusion < 0.3 * without, (with_occlusion, without)
    assert ctx.lighting["occluded"] > 0.5


def _height_map(height, size: int = 160, extent: float = 4.0, left: float = -2.0):
    """A surface z = height(x, y) as a mesh over a grid (size x size vertices over extent x extent,
    x from ``left``): its vertices, triangles and unit normals, and the vertices' x and y."""
    y, x = np.mgrid[0:size, 0:size] * (extent / (size - 1))
    x, y = x + left, y - extent / 2
    z = height(x, y)
    gy, gx = np.gradient(z, extent / (size - 1))
    normals = np.stack([-gx, -gy, np.ones_like(z)], axis=-1).reshape(-1, 3)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    corner = (np.arange(size - 1)[:, None] * size + np.arange(size - 1)[None, :]).reshape(-1)
    triangles = np.concatenate(
        [
            np.stack([corner, corner + 1, corner + size], 1),
            np.stack([corner + 1, corner + size + 1, corner + size], 1),
        ]
    )
    return np.stack([x, y, z], axis=-1).reshape(-1, 3), triangles, normals, x.reshape(-1), y.reshape(-1)


def test_the_cavity_reads_a_groove_as_a_fold_a_ridge_as_none_and_a_plane_as_flat() -> None:
    sigma = 0.2
    positions, triangles, normals, x, y = _height_map(
        lambda x, y: (
            -0.1 * np.exp(-0.5 * ((x + 1.0) / 0.1) ** 2) + 0.1 * np.exp(-0.5 * ((x - 1.0) / 0.1) ** 2)
        )
    )
    found = vertex_cavity(positions, triangles, normals, sigma)
    middle = np.abs(y) < 1.0  # away from the map's open edges
    groove = middle & (np.abs(x + 1.0) < 0.03)
    ridge = middle & (np.abs(x - 1.0) < 0.03)
    flat = middle & (np.abs(x) < 0.3)
    # A groove 0.1 deep and 0.1 wide, smoothed over 0.2: the mean around its floor lies 0.1 x (1 -
    # 0.1 / sqrt(0.1² + 0.2²)) = 0.055 above it.
    assert 0.04 < np.median(found[groove]) < 0.07, np.median(found[groove])
    assert np.median(found[ridge]) < -0.04
    assert np.abs(found[flat]).max() < 0.003


def test_the_cavity_reads_no_fold_where_the_surface_stops() -> None:
    """A flat surface that bends out half a sigma past where it stops (a bust's neck cut a little
    below the skull): the mean of the surface around a point by the cut lies on the bend's side
    only and reads a fold 1.7 times as deep as the same surface's where it goes on past the cut.
    The reading by the cut is not deeper than the whole surface's, and a few sigmas in it is the
    same."""
    sigma = 0.2

    def height(x, y):
        return 1.5 * np.clip(x + 1.9, 0, None) ** 2

    positions, triangles, normals, x, y = _height_map(height, size=160, extent=4.0, left=-2.0)
    cut = vertex_cavity(positions, triangles, normals, sigma)
    positions, triangles, normals, x_whole, y_whole = _height_map(height, size=200, extent=5.0, left=-3.0)
    whole = vertex_cavity(positions, triangles, normals, sigma)

    def at(found, where_x, xs, ys):  # away from the maps' other edges
        return np.median(found[(np.abs(xs - where_x) < 0.02) & (np.abs(ys) < 1.0)])

    by_cut, there = at(cut, -2.0, x, y), at(whole, -2.0, x_whole, y_whole)
    assert there > 0.005  # the bend is a fold there, on the whole surface
    assert by_cut <= there + 0.002
    inside, inside_whole = at(cut, -1.2, x, y), at(whole, -1.2, x_whole, y_whole)
    assert abs(inside - inside_whole) < 0.2 * abs(inside_whole) + 1e-3


def test_the_cavity_is_the_same_on_a_low_poly_mesh() -> None:
    """A low-poly groove (vertices a sigma apart) is smoothed over points spread on its triangles,
    not over its few vertices alone: its vertices read what a dense mesh's do."""
    sigma = 0.2

    def height(x, y):
        return -0.2 * np.exp(-0.5 * (x / 0.3) ** 2)

    dense = _height_map(height, size=161, extent=4.0)
    sparse = _height_map(height, size=21, extent=4.0)
    found = [vertex_cavity(p, t, n, sigma) for p, t, n, _, _ in (dense, sparse)]
    at = [
        np.median(f[(np.abs(m[3]) < 0.01) & (np.abs(m[4]) < 1.0)])
        for f, m in zip(found, (dense, sparse), strict=True)
    ]
    assert at[0] > 0.01 and abs(at[1] - at[0]) < 0.25 * at[0], at


def _count_calls(monkeypatch, module, name: str, argument: int = 0) -> list[int]:
    """Replace ``module.name`` by itself noting the length of its ``argument``-th argument per call
    (the points smoothed, the triangles drawn); returns that list."""
    seen: list[int] = []
    original = getattr(module, name)

    def counting(*args):
        seen.append(len(args[argument]))
        return original(*args)

    monkeypatch.setattr(module, name, counting)
    return seen


def test_a_dense_meshs_cavity_is_measured_at_anchors_and_matches_the_exact_one(monkeypatch) -> None:
    """A sculpt subdivided to a million faces spent half a minute smoothing its surface at every
    vertex: on a dense mesh the smoothing runs at anchors and carries to the other vertices, within
    a few percent of measuring every vertex; a mesh not that dense is measured as before."""
    from avatartex import occlusion

    ball = trimesh.creation.icosphere(subdivisions=6)  # 40962 vertices
    p = np.asarray(ball.vertices, np.float64)
    bumps = 1.0 + 0.05 * np.sin(7 * p[:, 0]) * np.sin(5 * p[:, 1]) * np.sin(6 * p[:, 2])
    bumpy = trimesh.Trimesh(p * bumps[:, None], ball.faces, process=False)
    positions, triangles = bumpy.vertices, bumpy.faces
    normals = np.asarray(bumpy.vertex_normals, np.float64)
    queried = _count_calls(monkeypatch, occlusion, "smoothed")
    fast = vertex_cavity(positions, triangles, normals, 0.3)
    assert queried and queried[0] < len(positions) / occlusion.CAVITY_DENSE  # at anchors only
    monkeypatch.setattr(occlusion, "CAVITY_DENSE", 10**9)
    exact = vertex_cavity(positions, triangles, normals, 0.3)
    assert queried[-1] == len(positions)
    scale = np.percentile(np.abs(exact), 95)
    assert np.corrcoef(fast, exact)[0, 1] > 0.99
    assert np.median(np.abs(fast - exact)) < 0.05 * scale
    monkeypatch.setattr(occlusion, "CAVITY_DENSE", 3)
    queried.clear()
    fine = vertex_cavity(positions, triangles, normals, 0.02)  # sparse for this sigma: every vertex
    assert queried == [len(positions)] and fine.shape == (len(positions),)


def test_a_mesh_of_many_faces_to_a_pixel_is_drawn_merged_with_the_same_occlusion(monkeypatch) -> None:
    """A 1.1 M-face head's 64 depth maps took 17 s; drawn merged to half a pixel (``clustered``), the
    occlusion is the same within the depth test's tolerance, and a mesh not that dense is drawn whole."""
    from avatartex import occlusion, raster

    # A ball with a deep dent: the dent's floor is closed in, the ball's outside open.
    ball = trimesh.creation.icosphere(subdivisions=6)  # 81920 faces
    p = np.asarray(ball.vertices, np.float64)
    floor = p[:, 2] > 0.95
    p[p[:, 2] > 0.7, 2] = 1.4 - p[p[:, 2] > 0.7, 2]
    dented = trimesh.Trimesh(p, ball.faces, process=False)
    normals = np.asarray(dented.vertex_normals, np.float64)
    drawn = _count_calls(monkeypatch, raster, "rasterize_camera", argument=1)
    merged = vertex_occlusion(dented.vertices, dented.faces, normals, views=32, size=32)
    assert max(drawn) < len(dented.faces) / 3
    drawn.clear()
    monkeypatch.setattr(occlusion, "DENSE_FACES_PER_PIXEL", 10**9)
    whole = vertex_occlusion(dented.vertices, dented.faces, normals, views=32, size=32)
    assert set(drawn) == {len(dented.faces)}
    assert np.abs(merged - whole).mean() < 0.01 and np.corrcoef(merged, whole)[0, 1] > 0.99
    assert whole[floor].mean() < whole[p[:, 2] < 0].mean() - 0.1  # the dent's floor is closed in
