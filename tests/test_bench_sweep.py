"""The sweep benchmark's truth is right: its cases render, and the true camera reprojects the render
onto the known texture (bench/sweep.py, bench/groundtruth.py)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from testing_paths import ROOT

sys.path.insert(0, str(ROOT / "bench"))

import groundtruth as gt  # noqa: E402
import sweep  # noqa: E402


@pytest.fixture(scope="module")
def heads() -> dict[str, gt.Head]:
    return {
        name: gt.demo_head(name.removeprefix("demo-") if "-" in name else "", 40)
        for name in ("demo", "demo-long_nose")
    }


def _read_back(render: gt.Render, surface: gt.TexelSurface, camera) -> np.ndarray:
    """The texture as a camera reads the render: every texel's surface point projected and sampled."""
    from avatartex.metrics import sample_uv

    xy, _ = camera.project(surface.positions)
    h, w = render.image.shape[:2]
    texture = np.zeros(surface.mask.shape + (3,), np.float32)
    texture[surface.mask] = sample_uv(render.image, np.stack([xy[:, 0] / w, 1 - xy[:, 1] / h], axis=1))
    return texture


def test_true_camera_reprojects_the_render_onto_the_truth(heads) -> None:
    cases = sweep.design(2, list(heads), seed=3, sizes=(256,))
    assert {c.head for c in cases} == set(heads)
    for case in cases:
        _check_case(case, heads[case.head])


def _check_case(case: sweep.Case, head: gt.Head) -> None:
    surface = gt.texel_surface(head, 256)
    truth = gt.truth_texture(head, surface, "blotches", case.seed)
    camera = gt.portrait_camera(
        head, case.yaw, case.pitch, case.roll, case.fov, 384, 384, case.fill, (case.shift_x, case.shift_y)
    )
    background = gt.background_image("flat", 384, 384, np.random.default_rng(0))
    # Ambient light only: the render is the albedo times one gain, which psnr_visible forgives.
    render = gt.render_portrait(head, truth, camera, [], 0.6, background)
    visible = gt.seen_texels(head, surface, render, min_cos=0.5)
    assert visible.sum() > 2000, case
    good = gt.psnr_visible(_read_back(render, surface, camera), truth, visible)
    assert good > 30.0, (case, good)
    # The same read through a camera turned by 3 degrees is clearly worse: the check can fail.
    off = gt.portrait_camera(
        head, case.yaw + 3, case.pitch, case.roll, case.fov, 384, 384, case.fill, (case.shift_x, case.shift_y)
    )
    assert gt.psnr_visible(_read_back(render, surface, off), truth, visible) < good - 3
    # Misplacement: zero through the true camera, the shift in eye distances through a moved one.
    # The registration sees the moved copy; a perfect one undoes the move and uses the true camera.
    where = gt.placement("tilted70", head)

    def perfect(points: np.ndarray) -> np.ndarray:
        return camera.project(((points - where.offset) / where.scale) @ where.R)[0]

    zero, _ = gt.misplacement(head, where, surface, visible, camera, perfect)
    assert zero < 1e-6
    iod = gt.true_iod_px(head, camera)
    shifted, _ = gt.misplacement(
        head, where, surface, visible, camera, lambda p: perfect(p) + np.array([0.1 * iod, 0.0])
    )
    assert shifted == pytest.approx(0.1, abs=1e-6)


def test_stylized_variant_moves_its_feature(heads) -> None:
    """The long-nose variant's nose reaches further out than the demo head's; the eyes stay."""
    demo, long_nose = heads["demo"], heads["demo-long_nose"]
    assert long_nose.positions[:, 2].max() > demo.positions[:, 2].max() + 0.01
    assert long_nose.iod == pytest.approx(demo.iod)


def test_invariance_plan_holds_only_moved_copies() -> None:
    """``--invariance`` runs the moved copies and their references alone: every case is in a group,
    each group has its unmoved reference first."""
    cases = sweep.plan(quick=False, have_scan=True, seed=8, cases=None, invariance_only=True)
    assert cases and all(c.group for c in cases)
    for group in {c.group for c in cases}:
        members = [c for c in cases if c.group == group]
        assert members[0].transform == "none" and len(members) >= 2
    assert len(sweep.plan(quick=False, have_scan=True, seed=8, cases=None)) > len(cases)


def test_made_up_skin_paints_the_face_where_the_sculpture_has_it(heads) -> None:
    """The made-up skin's pupils and lips sit on the demo head's own eyeballs and lip shapes
    (``demo_head``'s constants) and leave the cheeks skin, on the plain and the long-nosed head;
    the scan, whose features are not known, gets a clear error instead of a face painted anywhere."""
    import dataclasses
    from types import SimpleNamespace

    from avatartex import demo_head as demo

    for head in heads.values():
        closest = head.positions[np.argmin(np.linalg.norm(head.positions - (0.045, -0.035, 0.08), axis=1))]
        points = [
            (demo.EYE_X, demo.EYE_Y, demo.EYEBALL_Z + demo.EYEBALL_R),  # the front of the left eyeball
            (-demo.EYE_X, demo.EYE_Y, demo.EYEBALL_Z + demo.EYEBALL_R),
            np.add(demo.UPPER_LIP[0], (0.0, 0.0, demo.UPPER_LIP[2])),  # the front of the upper lip
            closest,  # a cheek
        ]
        pupils, pupil, lip, cheek = gt.made_up_texture(np.array(points), head.shape, seed=1)[[0, 1, 2, 3]]
        assert pupils.max() < 0.1 and pupil.max() < 0.1
        assert lip[0] > 1.45 * lip[1]  # red, where the skin is 0.8 : 0.6
        assert np.allclose(cheek, gt.skin_texture(np.array([closest]) - (0.0, -0.03, 0.05), 0.2048, 1)[0])
    unknown = dataclasses.replace(heads["demo"], name="scan", shape=None)
    surface = SimpleNamespace(mask=np.zeros((8, 8), bool), positions=np.zeros((0, 3)))
    with pytest.raises(ValueError, match="made-up skin"):
        gt.truth_texture(unknown, surface, "made_up", 1)


def test_turned_cases_turn_the_photo_as_a_lost_orientation_tag_does() -> None:
    made_up = sweep.made_up_cases(sweep.design(48, ["demo", "demo-big_eyes"], seed=5))
    turned = sweep.turned_cases(made_up)
    assert len(turned) == len(made_up[:: sweep.TURNED_SHARE]) >= 3
    for i, (t, m) in enumerate(zip(turned, made_up[:: sweep.TURNED_SHARE], strict=True)):
        turn = (90.0, 180.0, -90.0)[i % 3]
        assert t.id == "t" + m.id[1:] and t.roll == m.roll + turn
        assert (t.width, t.height) == ((m.height, m.width) if abs(turn) == 90 else (m.width, m.height))
        assert (t.head, t.yaw, t.pitch, t.fov, t.skin) == (m.head, m.yaw, m.pitch, m.fov, m.skin)


def test_made_up_cases_copy_every_third_demo_case_with_a_painted_face() -> None:
    cases = sweep.design(24, ["scan", "demo", "demo-big_eyes"], seed=5)
    made_up = sweep.made_up_cases(cases)
    demo = [c for c in cases if c.head.startswith("demo")]
    assert [m.id for m in made_up] == ["m" + c.id[1:] for c in demo[:: sweep.MADE_UP_SHARE]]
    for m in made_up:
        original = next(c for c in cases if c.id == "r" + m.id[1:])
        assert m.skin == "made_up"
        assert (m.head, m.yaw, m.pitch, m.fov, m.light) == (
            original.head, original.yaw, original.pitch, original.fov, original.light,
        )  # fmt: skip


def test_mesh_reading_paints_the_eyeballs_and_only_them(heads) -> None:
    """bench/mesh_reading.py's ``--paint-eyes``: on the shaded render, the pixels on the eyeballs'
    fronts turn to pupils, everything else keeps the render's shading exactly."""
    import mesh_reading
    from avatartex import demo_head as demo
    from avatartex import landmarks as lm

    head = heads["demo"]
    camera = gt.portrait_camera(head, 0.0, 0.0, 0.0, 30.0, 256, 256)
    plain = lm.render_shaded(head.positions, head.triangles, head.normals, camera)
    painted = mesh_reading.with_eyes_painted(lm.render_shaded, head)(
        head.positions, head.triangles, head.normals, camera
    )
    xy, _ = camera.project(np.array([[demo.EYE_X, demo.EYE_Y, demo.EYEBALL_Z + demo.EYEBALL_R]]))
    col, row = np.floor(xy[0]).astype(int)
    assert plain[0][row, col].mean() > 0.3 and painted[0][row, col].max() < 0.1
    changed = np.abs(painted[0] - plain[0]).max(axis=2) > 1e-6
    assert 0 < changed.sum() < 0.05 * (plain[1] >= 0).sum()
    eyes = np.linalg.norm(np.abs(painted[3][changed]) - (demo.EYE_X, demo.EYE_Y, demo.EYEBALL_Z), axis=1)
    assert eyes.max() < 1.5 * demo.EYEBALL_R  # nothing painted off the eyeballs


def _called_from(module: str, function, *args):
    """``function(*args)`` called from code whose module is named ``module`` (the painter decides by
    its caller's module)."""
    namespace = {"__name__": module, "function": function, "args": args}
    exec(compile("result = function(*args)", module, "exec"), namespace)
    return namespace["result"]


def test_eye_painter_finds_the_eyeballs_on_a_moved_copy_and_leaves_the_dense_alignment_plain(heads) -> None:
    """``mesh_reading.EyePainter`` (``bench/sweep.py --paint-eyes``): the pipeline reads a moved,
    turned and scaled copy of the head; the pupils are painted on the copy's render where the
    eyeballs are, only while entered, and never on a render the dense alignment asks for."""
    import mesh_reading
    from avatartex import demo_head as demo
    from avatartex import landmarks as lm

    head = heads["demo"]
    turn, _ = gt.TRANSFORMS["tilted70"]
    where = gt.Placement("tilted70x100", turn, 100.0, np.array([3.0, -7.0, 2.0]))
    moved = where.apply(head.positions)
    camera = gt.portrait_camera(head, 0.0, 0.0, 0.0, 30.0, 256, 256)
    eye, target = where.apply(np.array([camera.center, head.face_centre]))
    view = type(camera).look_at(eye, target, turn @ np.array([0.0, 1.0, 0.0]), 30.0, 256, 256)
    pupil = where.apply(np.array([[demo.EYE_X, demo.EYE_Y, demo.EYEBALL_Z + demo.EYEBALL_R]]))
    col, row = np.floor(view.project(pupil)[0][0]).astype(int)
    normals = gt._normals(moved, head.triangles)
    painter = mesh_reading.EyePainter()
    painter.head = head
    with painter:
        painted = lm.render_shaded(moved, head.triangles, normals, view)[0]
        painted_lit = lm.render_lit_like(moved, head.triangles, normals, view, None)[0]
        for_alignment = _called_from(
            "avatartex.alignment", lm.render_lit_like, moved, head.triangles, normals, view, None
        )[0]
    plain = lm.render_shaded(moved, head.triangles, normals, view)[0]
    assert (
        plain[row, col].mean() > 0.3 and painted[row, col].max() < 0.1 and painted_lit[row, col].max() < 0.1
    )
    assert np.array_equal(for_alignment, lm.render_lit_like(moved, head.triangles, normals, view, None)[0])


def test_separate_eyeballs_have_uv_islands_of_their_own_and_cases_of_their_own(heads) -> None:
    """``groundtruth.with_eyeballs``: the two spheres' UV islands overlap none of the head's (else the
    truth texture would give two surfaces one texel), ``groundtruth.eyeball_texels`` (the sweep's
    ``psnr_eyeballs``) holds the spheres' texels and none of the head's, and ``sweep.eyeball_cases``
    runs every made-up case again on such a head, camera, light and skin unchanged."""
    from avatartex import raster

    islands = gt.eyeball_texels(512)
    for head in heads.values():
        both = gt.with_eyeballs(head)
        own, _ = raster.rasterize_uv(both.uvs[: len(head.triangles)], 512)
        balls, _ = raster.rasterize_uv(both.uvs[len(head.triangles) :], 512)
        assert (balls >= 0).sum() > 0.01 * 512 * 512 and not ((own >= 0) & (balls >= 0)).any()
        assert islands[balls >= 0].all() and not islands[own >= 0].any()
    made_up = sweep.made_up_cases(sweep.design(24, ["demo", "demo-big_eyes"], seed=5))
    again = sweep.eyeball_cases(made_up)
    assert [c.id for c in again] == ["e" + m.id[1:] for m in made_up]
    for m, e in zip(made_up, again, strict=True):
        assert e.head == m.head + sweep.EYEBALLS and (e.skin, e.yaw, e.light) == (m.skin, m.yaw, m.light)


def test_shiny_cases_add_the_key_lights_white_shine_where_it_mirrors_to_the_camera(heads) -> None:
    made_up = sweep.made_up_cases(sweep.design(48, ["demo", "demo-big_eyes"], seed=5))
    shiny = sweep.shiny_cases(made_up)
    assert [c.id for c in shiny] == ["h" + m.id[1:] for m in made_up[1 :: sweep.SHINY_SHARE]]
    assert all(c.shine == sweep.SHINE for c in shiny) and len(shiny) >= 2
    head = heads["demo"]
    camera = gt.portrait_camera(head, 0.0, 0.0, 0.0, 30.0, 160, 160, 0.6, (0.0, 0.0))
    lights = [gt.Light(np.array([0.0, 0.5, 1.0]) / np.sqrt(1.25), 1.0, False)]
    truth = np.full((64, 64, 3), 0.6, np.float32)
    background = np.zeros((160, 160, 3), np.float32)
    matte = gt.render_portrait(head, truth, camera, lights, 0.3, background)
    shiny_render = gt.render_portrait(head, truth, camera, lights, 0.3, background, sweep.SHINE)
    added = (shiny_render.image - matte.image).mean(axis=-1)
    assert added.min() >= -1e-6 and added.max() > 0.1  # only added, and somewhere strongly
    # White: the three channels rise together in linear light where the render is not clipped.
    grew = (added > 0.02) & (shiny_render.image.max(axis=-1) < 0.99)
    spread = (np.power(shiny_render.image, 2.2) - np.power(matte.image, 2.2))[grew]
    assert grew.sum() > 20 and np.abs(spread - spread.mean(axis=1, keepdims=True)).max() < 0.01
