"""The styles read as styles: outlines follow the face's feature contours, no ink on smooth skin or
the chest, each style visibly its own.

The scanned head's atlas (skipped loudly without ``../shared``) textured from the astronaut by a
frontal projection; the feature lines come from the portrait's real landmarks (mediapipe) through
``features.feature_lines``, as in a ``generate`` request.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import cv2
import numpy as np
import pytest
from avatartex import features
from avatartex.engines.base import AtlasTexture
from avatartex.engines.classic.inpaint import ClassicInpaint
from avatartex.engines.classic.latent import ClassicLatent
from avatartex.engines.classic.repaint import ClassicRepaint
from classic_fixtures import astronaut, frontal_texture, head_atlas, make_ctx

SIZE = 512
INKED = ("toon", "comic", "anime")
INK_COLOURS = {"toon": (0.16, 0.08, 0.07), "comic": (0.04, 0.035, 0.05), "anime": (0.12, 0.06, 0.07)}


@lru_cache(maxsize=1)
def _scene() -> tuple[object, AtlasTexture, np.ndarray, dict[str, np.ndarray]]:
    from avatartex.face import analyse_portrait, default_landmarker

    geo = head_atlas(SIZE)
    portrait = astronaut()
    texture, coords = frontal_texture(geo, portrait)
    face, _ = analyse_portrait(portrait, "astronaut", default_landmarker())
    lines = features.feature_lines(geo, face.landmarks, coords)
    return geo, texture, coords, lines, face.landmarks


def _run(style: str) -> tuple[np.ndarray, object]:
    """The scene through the three stages in ``style``: the texture's colour and the stage context."""
    geo, texture, coords, lines, _ = _scene()
    ctx = make_ctx(geo, style, astronaut(), coords, seed=1)
    ctx.feature_lines = lines
    for stage in (ClassicInpaint(), ClassicLatent(), ClassicRepaint()):
        texture = stage.run(texture, ctx)
    return texture.color, ctx


def _completed(style: str) -> tuple[object, AtlasTexture, object]:
    """The scene through the stages before the repaint in ``style``: the atlas geometry, the
    completed texture and the stage context (for a repaint run on a texture changed from it)."""
    geo, texture, coords, lines, _ = _scene()
    ctx = make_ctx(geo, style, astronaut(), coords, seed=1)
    ctx.feature_lines = lines
    for stage in (ClassicInpaint(), ClassicLatent()):
        texture = stage.run(texture, ctx)
    return geo, texture, ctx


@lru_cache(maxsize=8)
def _styled(style: str) -> np.ndarray:
    return _run(style)[0]


def _ink(style: str) -> np.ndarray:
    """Texels painted in the style's ink colour, outside the eyes (a pupil is a fill, not an outline)."""
    _, _, _, lines, _ = _scene()
    colour = np.array(INK_COLOURS[style], np.float32)
    ink = (np.abs(_styled(style) - colour).max(axis=-1) < 0.06) & head_atlas(SIZE).mask
    for eye in ("right_eye", "left_eye"):
        inside = features.fill_polygon(ink.shape, lines[eye]) > 0.5
        # Shrink by the lash line's width: the outline itself stays counted.
        ink &= ~(inside & (features.distance_to_lines(ink.shape, [lines[eye]]) > 0.03 * _unit()))
    return ink


def _unit() -> float:
    geo = head_atlas(SIZE)
    return SIZE * (1 + geo.layout.warp) / (2 * np.pi) / 1.35


def test_feature_lines_land_where_the_photo_shows_the_features() -> None:
    geo, _, coords, lines, landmarks = _scene()
    for name in ("right_eye", "left_eye", "right_brow", "left_brow", "lips_outer", "lips_inner", "nose"):
        assert name in lines, name
    found = features.landmarks_in_atlas(geo, landmarks, coords)
    idx = [i for indices, _ in features.FEATURES.values() for i in indices]
    ok = np.isfinite(found[idx]).all(axis=1)
    assert ok.mean() > 0.9
    # Reading the projection at the found atlas position gives back the portrait's landmark.
    back = geo.sample(np.nan_to_num(coords), found[idx][ok])
    error = np.linalg.norm(back - landmarks[idx][ok], axis=1)
    assert np.median(error) < 0.5 and np.percentile(error, 95) < 1.5, np.percentile(error, [50, 95])
    # The character's right eye is on the atlas's left (its longitude is negative).
    assert lines["right_eye"][:, 0].mean() < SIZE / 2 < lines["left_eye"][:, 0].mean()


@pytest.mark.parametrize("style", INKED)
def test_outlines_follow_the_feature_contours(style: str) -> None:
    """Ink lies on the feature lines (>= 90 % of it within 0.03 eye distances) and the lines that the
    style inks are covered (>= 80 % of their length has ink within 0.02 eye distances)."""
    _, _, _, lines, _ = _scene()
    ink = _ink(style)
    unit = _unit()
    brows = [features.brow_midline(lines[b]) for b in ("right_brow", "left_brow")]
    distance = features.distance_to_lines(ink.shape, list(lines.values()) + brows)
    near = distance[ink] <= max(0.03 * unit, 2.0)
    assert ink.sum() > 50, ink.sum()
    assert near.mean() >= 0.9, (style, near.mean())
    # The lash lines, the line where the lips meet and (toon, comic) the underside of the nose.
    inked = [features.arc(lines[e], 0.1, 0.4) for e in ("right_eye", "left_eye")]
    inked.append(features.arc(lines["lips_inner"], 0.6, 0.9))
    if style != "anime":
        inked.append(features.arc(lines["nose"], 0.2, 0.8))
    ink_distance = _distance_to_mask(ink)
    for line in inked:
        xy = np.round(line - 0.5).astype(int)
        covered = ink_distance[xy[:, 1], xy[:, 0]] <= max(0.02 * unit, 1.5)
        assert covered.mean() >= 0.8, (style, covered.mean())


def _distance_to_mask(mask: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)


@pytest.mark.parametrize("style", INKED)
def test_no_ink_on_smooth_skin_or_the_chest(style: str) -> None:
    geo, _, _, lines, _ = _scene()
    ink = _ink(style)
    distance = features.distance_to_lines(ink.shape, list(lines.values()))
    far = geo.mask & (distance > 0.15 * _unit())
    assert ink[far].mean() <= 1e-4, (style, ink[far].mean())
    # Below the jaw (neck, chest, bust edge) and the caps: no ink at all.
    chin_row = int(np.ceil(lines["lips_outer"][:, 1].max() + 0.5 * _unit()))
    below = geo.mask.copy()
    below[:chin_row] = False
    assert ink[below].sum() == 0, (style, int(ink[below].sum()))


def test_each_style_looks_its_own() -> None:
    geo = head_atlas(SIZE)
    styles = ("photoreal", "painterly", "toon", "comic", "anime")
    out = {s: _styled(s) for s in styles}
    face = geo.face if geo.face.any() else geo.mask
    for i, a in enumerate(styles):
        for b in styles[i + 1 :]:
            diff = np.abs(out[a] - out[b])[face].mean()
            assert diff > 0.02, (a, b, diff)
    # Flat styles are flat: few distinct colours on the skin compared with the photo's.
    for flat in ("toon", "anime"):
        colours = len(np.unique(np.round(out[flat][face] * 64), axis=0))
        assert colours < len(np.unique(np.round(out["photoreal"][face] * 64), axis=0)) / 4, flat


def test_the_cel_shadow_folds_are_the_meshs_own() -> None:
    """The styles' cel shadows follow the head's folds (``repaint.head_forms``'s cavity). Measured in
    the atlas's own layout, the band's edge (mirrored by the blur) read the scanned bust's neck
    under each ear as a deep fold, which toon and anime drew as a shadow band ending in a straight
    edge where the band ends. Against the cavity measured straight at the atlas texels' surface
    points, the surface around them taken from points spread over the whole mesh, hardly a texel
    reads a fold the mesh does not have (6.5 % did), and the two readings agree (correlation 0.92;
    0.08 before)."""
    import trimesh
    from avatartex import occlusion
    from avatartex.engines.classic.repaint import CAVITY_SIGMA_IOD, head_forms
    from classic_fixtures import HEAD_GLB

    geo = head_atlas(SIZE)
    every = np.arange(int(geo.mask.sum())) % 5 == 0
    cavity = head_forms(geo)["cavity"][geo.mask][every]
    mesh = trimesh.load(HEAD_GLB, force="mesh")
    points, _ = trimesh.sample.sample_surface_even(mesh, 200000, seed=0)
    samples = geo.frame.to_head(points)
    samples = samples[occlusion.spread(samples, CAVITY_SIGMA_IOD / 3.0)]
    positions = geo.frame.to_head(geo.positions[geo.mask][every])
    normals = geo.normals[geo.mask][every]
    whole = np.einsum(
        "ij,ij->i", occlusion.smoothed(positions, samples, CAVITY_SIGMA_IOD) - positions, normals
    )
    fold = 0.55 / 12  # the cavity at which the anime style's shadow starts (repaint._shadow_level)
    invented = (cavity > fold) & (whole < fold / 3)
    assert invented.mean() < 0.003, invented.mean()
    assert (whole > fold).sum() > 20 and np.corrcoef(cavity, whole)[0, 1] > 0.8


def _cel_shadow(style: str) -> tuple[np.ndarray, np.ndarray]:
    """The cel shadow the style drew (``StageContext.style_shadow``) on the scene, and the shadow
    the head's forms alone draw."""
    from avatartex.engines.classic import repaint

    _, ctx = _run(style)  # not the cached one: a test runs it again with the rule off
    forms = repaint._shadow_shapes(ctx.atlas, 1.0, ctx.style.classic.get("shadow_threshold", 0.6))
    return np.asarray(ctx.style_shadow.atlas_map), forms


def _specks(shadow: np.ndarray, forms: np.ndarray, min_iod2: float) -> list[float]:
    """The areas (square eye distances) of the shadow's islands under ``min_iod2`` that touch no
    form shadow."""
    import cv2

    unit = _unit()
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        (shadow > 0.5).astype(np.uint8), connectivity=8
    )
    touching = set(np.unique(labels[(forms > 0.5) & (labels > 0)]).tolist())
    areas = stats[1:, cv2.CC_STAT_AREA] / unit**2
    return [float(a) for i, a in enumerate(areas, start=1) if a < min_iod2 and i not in touching]


def test_toon_draws_its_cel_shadows_as_forms_not_specks(monkeypatch) -> None:
    """Where the photo's skin is darker the toon draws a cel shadow; a small island of it that no
    form explains (a crease's shadow, a mole: the astronaut's smile crease, a dark dot on the cheek)
    is dropped, the forms' own shadows and the photo's larger tone shapes (the sockets) kept."""
    from avatartex.engines.classic import repaint

    shadow, forms = _cel_shadow("toon")
    assert not _specks(shadow, forms, repaint.TONE_SHADOW_MIN_IOD2)
    kept = (shadow > 0.5) & ~(forms > 0.5)
    assert kept.sum() > 0.05 * _unit() ** 2  # the photo's tone still draws shadows of its own
    # The same scene without the rule has specks: the test can tell; the forms' shadows are the same.
    monkeypatch.setattr(repaint, "TONE_SHADOW_MIN_IOD2", 0.0)
    unfiltered, _ = _cel_shadow("toon")
    assert _specks(unfiltered, forms, 0.04), "the scene shows no speck to drop"
    assert np.array_equal(shadow[forms > 0.5], unfiltered[forms > 0.5])


def test_specks_go_with_their_soft_rims_and_islands_touching_a_form_stay() -> None:
    from avatartex.engines.classic.repaint import without_specks

    shadow = np.zeros((64, 64), np.float32)
    forms = np.zeros((64, 64), np.float32)
    shadow[10:14, 10:14] = 1.0  # a speck (16 texels)
    shadow[9, 10:14] = 0.3  # its soft rim
    shadow[30:34, 30:34] = 1.0  # a speck beside a form shadow, touching it
    forms[30:40, 34:44] = 1.0
    shadow[45:60, 5:20] = 1.0  # a large island (225 texels)
    out = without_specks(shadow, forms, min_area=100)
    assert not out[8:16, 8:16].any()
    assert np.array_equal(out[30:34, 30:34], shadow[30:34, 30:34])
    assert np.array_equal(out[45:60, 5:20], shadow[45:60, 5:20])
    assert np.array_equal(without_specks(np.zeros_like(shadow), forms, 100), np.zeros_like(shadow))


def test_the_jaw_and_where_the_lips_meet_are_the_heads_own_and_the_features_the_photos(monkeypatch) -> None:
    """The jaw a style inks is the head's outline where the mesh's own landmarks put it (a sculpt
    with a wider jaw than the photographed face's got the photo's jaw across its cheeks), and the
    inner lips where the mesh's lips meet (the astronaut's open smile drew that line on a closed
    mouth's upper lip); the eyes, brows, outer lips and nose stay where the photo shows them."""
    from avatartex.face import JAW, LIPS_INNER

    geo, _, coords, lines, landmarks = _scene()
    unit = _unit()
    # The mesh's jaw 0.12 eye distances below the photo's (its landmarks in the atlas, as
    # ``features._mesh_to_atlas`` finds them from the mesh's points).
    jaw_idx = np.asarray(JAW)
    photo_jaw = lines["jaw"][np.linspace(0, len(lines["jaw"]) - 1, len(jaw_idx)).round().astype(int)]
    lower = photo_jaw + np.array([0.0, 0.12 * unit])
    mesh_xy = np.full((468, 2), np.nan)
    mesh_xy[jaw_idx] = lower
    # The mesh's mouth closed, on the photo's inner lips' middle line.
    inner_idx = np.asarray(LIPS_INNER)
    photo_inner = lines["lips_inner"][:: features._SUBDIVIDE][: len(inner_idx)]
    closed = np.stack([photo_inner[:, 0], np.full(len(inner_idx), photo_inner[:, 1].mean())], axis=1)
    mesh_xy[inner_idx] = closed
    monkeypatch.setattr(features, "_mesh_to_atlas", lambda geometry, points: mesh_xy)
    own = features.feature_lines(geo, landmarks, coords, np.zeros((468, 3)))

    def distance(line: np.ndarray, points: np.ndarray) -> float:
        """Median distance from ``points`` to the (densely sampled) ``line``."""
        return float(np.median(np.min(np.linalg.norm(points[:, None] - line[None], axis=-1), axis=1)))

    assert distance(own["jaw"], lower) < 0.01 * unit  # the mesh's jaw
    assert distance(lines["jaw"], lower) > 0.06 * unit  # the photo's was elsewhere
    assert distance(own["lips_inner"], closed) < 0.01 * unit  # the mesh's closed mouth
    assert distance(lines["lips_inner"], closed) > 0.02 * unit  # the photo's mouth is open
    for name in ("right_eye", "left_eye", "lips_outer", "nose"):
        assert np.array_equal(own[name], lines[name]), name
    # Where the mesh's jaw is not known whole, the photo's is drawn.
    mesh_xy[jaw_idx[3]] = np.nan
    partial = features.feature_lines(geo, landmarks, coords, np.zeros((468, 3)))["jaw"]
    assert distance(partial, photo_jaw) < 0.02 * unit and distance(partial, lower) > 0.06 * unit


@pytest.mark.parametrize("style", ("toon", "comic"))
def test_the_stroke_under_the_lower_lip_is_under_its_middle(style: str) -> None:
    """Toon and comic mark the lower lip's shadow with a short stroke under its middle (the outer lip
    contour runs from the right corner along the lower lip, its middle a quarter of the way); it
    was drawn towards the left corner, a line slanting off the mouth onto the cheek."""
    from avatartex.engines.classic import repaint

    outer = _scene()[3]["lips_outer"]
    (stroke,) = repaint.feature_strokes({"lips_outer": outer}, _unit(), 1.0, style)
    sub = features._SUBDIVIDE
    middle, right, left = outer[5 * sub], outer[0], outer[10 * sub]  # landmarks 17, 61, 291
    width = float(np.linalg.norm(left - right))
    assert abs(float(stroke.points[:, 0].mean() - middle[0])) < 0.1 * width
    assert float(stroke.points[:, 1].min()) > float(min(right[1], left[1]))  # below the corners


@pytest.mark.parametrize("style", INKED)
def test_cel_shadows_fall_under_the_jaw_not_along_a_busts_cut(style: str) -> None:
    """Facing down is a form of the head under the chin and the jaw; far below it (the scanned
    bust's bottom, its cut) it drew a dark line, in comic a band of halftone dots, along the bust's
    bottom edge. The bake's rule for the texels the atlas does not hold says the same, and of a
    fold as well: an eye socket's is shadowed, the chest's (the scanned bust's hollow between its
    collarbones, under them) is not (a dark wedge and smears on the chest, in comic)."""
    from avatartex.engines.classic import repaint

    shadow, _ = _cel_shadow(style)
    geo = head_atlas(SIZE)
    heights = geo.frame.to_head(np.where(geo.mask[..., None], geo.positions, 0.0))[..., 1]
    below = geo.mask & (heights < repaint.FACING_DOWN_FADE[1])
    under_jaw = geo.mask & (heights > -2.6) & (heights < -2.0)
    assert below.sum() > 1000 and under_jaw.sum() > 1000
    assert (shadow[below] > 0.5).mean() == 0.0
    assert (shadow[under_jaw] > 0.5).mean() > 0.1
    # A point facing straight down with no fold: in shadow under the jaw, not far below it.
    frame = geo.frame
    down = -frame.axes[1][None]
    points = frame.origin + frame.scale * np.array([[0.0, -2.3, 0.5], [0.0, -4.5, 0.5]]) @ frame.axes
    ctx = make_ctx(geo, style, astronaut(), None)
    repaint._keep_shadow(ctx, np.zeros(geo.mask.shape, np.float32), 0.45)
    levels = ctx.style_shadow.at(np.repeat(down, 2, axis=0), np.zeros(2, np.float32), points)
    assert levels[0] > 0.5 and levels[1] == 0.0, levels
    forward = frame.axes[2][None]
    folds = frame.origin + frame.scale * np.array([[0.4, -0.2, 0.8], [0.0, -4.2, 0.8]]) @ frame.axes
    levels = ctx.style_shadow.at(np.repeat(forward, 2, axis=0), np.full(2, 0.1, np.float32), folds)
    assert levels[0] > 0.5 and levels[1] == 0.0, levels


@pytest.mark.parametrize("threshold", [0.45, 0.55, 0.6])  # comic's, anime's and toon's
def test_no_cel_shadow_on_the_cut_at_a_short_necks_bottom(threshold: float) -> None:
    """A stylised head whose neck ends high (the contact sheet's: its bottom at -2.6 eye distances,
    above ``FACING_DOWN_FADE``) had its bottom's cap, facing straight down, in full cel shadow: in
    comic a disc of halftone dots, a dotted ring under the neck from the back. The cut is not a form
    of the head; under the jaw still is."""
    from avatartex import demo_head
    from avatartex.engines.classic import repaint
    from avatartex.mesh import Mesh, compute_normals
    from avatartex.pipeline.generator import Generator

    shape = demo_head.HeadShape(eye_scale=1.35, nose_length=1.3, jaw_width=1.2, chin_scale=0.7)
    positions, triangles, uvs, pins = demo_head.make_demo_head(shape=shape, resolution=72)
    mesh = Mesh(positions, triangles, uvs, compute_normals(positions, triangles), pins, "StylisedHead")
    geo = Generator(cache_size=1).head(mesh).atlas(256)
    points = geo.frame.to_head(np.where(geo.mask[..., None], geo.positions, 0.0))
    normals = geo.frame.directions_to_head(geo.normals)
    lowest = points[..., 1][geo.mask].min()
    assert lowest > repaint.FACING_DOWN_FADE[0]  # as short as the contact sheet's
    cap = geo.mask & (points[..., 1] < lowest + 0.05) & (normals[..., 1] < -0.9)
    under_jaw = geo.mask & (points[..., 1] > lowest + 0.5) & (normals[..., 1] < -0.7)
    assert cap.sum() > 30 and under_jaw.sum() > 30, (cap.sum(), under_jaw.sum())
    shadow = repaint._shadow_shapes(geo, 1.0, threshold)
    assert shadow[cap].max() == 0.0
    assert (shadow[under_jaw] > 0.5).mean() > 0.2
    # The bake's rule for a surface point the atlas does not hold: facing straight down with no
    # fold, in shadow under the jaw, not on the cut.
    ctx = make_ctx(geo, "comic", astronaut(), None)
    repaint._keep_shadow(ctx, np.zeros(geo.mask.shape, np.float32), threshold)
    frame = geo.frame
    down = np.repeat(-frame.axes[1][None], 2, axis=0)
    where = (
        frame.origin
        + frame.scale * np.array([[0.0, lowest + 0.02, 0.0], [0.0, lowest + 0.8, 0.5]]) @ frame.axes
    )
    levels = ctx.style_shadow.at(down, np.zeros(2, np.float32), where)
    assert levels[0] == 0.0 and levels[1] > 0.5, levels


@pytest.mark.parametrize("threshold", [0.45, 0.6])  # comic's and toon's
def test_no_fold_specks_on_the_back_of_the_head(threshold: float) -> None:
    """The back of the head has no feature: a fold shadow there smaller than a form is a bump of the
    scan (the scanned head's occipital groove: a dark dash on the back of its head, in comic a dotted
    smudge). It goes; everything before the ears is as the folds draw it."""
    import cv2
    from avatartex.engines.classic import repaint

    geo = head_atlas(SIZE)
    forms = repaint.head_forms(geo)
    drawn = repaint._shadow_level(forms["cavity"] * forms["head"], forms["down"], threshold)
    kept = repaint._shadow_shapes(geo, 1.0, threshold)
    back = geo.mask & (forms["front"] < 0.5)
    unit = geo.layout.face_texels_per_iod
    min_area = repaint.TONE_SHADOW_MIN_IOD2 * unit * unit

    def back_specks(shadow: np.ndarray) -> int:
        count, labels, stats, _ = cv2.connectedComponentsWithStats(
            (shadow > 0.5).astype(np.uint8), connectivity=8
        )
        return sum(
            1 for k in range(1, count) if stats[k, cv2.CC_STAT_AREA] < min_area and back[labels == k].all()
        )

    assert back_specks(drawn) > 0  # the groove
    assert back_specks(kept) == 0
    front = geo.mask & ~back
    assert np.array_equal(kept[front], drawn[front])


def test_a_palette_colour_near_the_skin_bar_does_not_flip_a_region() -> None:
    """``repaint.collapse_skin`` draws palette colours near the skin tone to it. With a hard bar a
    colour a few tenths of a CIELAB unit either side of it came out as the skin or as itself (comic's
    palette on this scene held 19.3 and 20.3 for a bar of 20, and 0.1 % of the atlas's texels moved
    one across): its region flipped between skin and blotch. Now the pull fades over the bar:
    colours either side of it come out nearly alike, the near ones are the skin, the far ones their
    own."""
    import cv2
    from avatartex.engines.classic.repaint import collapse_skin

    skin = np.array([0.78, 0.6, 0.48], np.float32)
    skin_lab = cv2.cvtColor(skin[None, None], cv2.COLOR_RGB2Lab)[0, 0]

    def at(distance: float) -> np.ndarray:  # a colour that far from the skin along +b* (yellower)
        lab = (skin_lab + np.array([0.0, 0.0, distance], np.float32))[None, None]
        return np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)[0, 0], 0, 1)

    colours = np.stack([at(d) for d in (5.0, 19.8, 20.2, 40.0)])
    out, is_skin = collapse_skin(colours, skin, 20.0)
    np.testing.assert_allclose(out[0], skin, atol=1e-6)  # near: the skin
    np.testing.assert_allclose(out[3], colours[3], atol=1e-6)  # far: its own
    assert np.abs(out[1] - out[2]).max() < 0.02  # either side of the bar: nearly alike
    assert np.abs(colours[2] - skin).max() > 0.1  # (the hard bar's jump between them)
    assert list(is_skin) == [True, True, False, False]


def test_toon_and_comic_make_a_colour_near_the_skin_bar_the_skin_as_one_past_it() -> None:
    """Toon and comic make every palette colour the skin's (``repaint._others_as_skin``): those past
    the skin bar wholly (a darker one a shadow's candidate), but one just inside it stayed partly its
    own (``collapse_skin``'s soft pull). Grace Hopper's darkest colour, 19.3 from the skin for a bar
    of 20, held one nasolabial fold on the scanned head: a brown stroke from a nose wing to the
    mouth on one side only, the other fold, a little lighter, in the next colour (past the bar: the
    skin's). Colours either side of the bar come out as the skin now, alike."""
    import cv2
    from avatartex.engines.classic.repaint import _others_as_skin, collapse_skin

    skin = np.array([0.86, 0.53, 0.37], np.float32)
    skin_lab = cv2.cvtColor(skin[None, None], cv2.COLOR_RGB2Lab)[0, 0]

    def darker_by(distance: float) -> np.ndarray:  # that far from the skin (L* weighted by half)
        lab = (skin_lab - np.array([2.0 * distance, 0.0, 0.0], np.float32))[None, None]
        return np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)[0, 0], 0, 1)

    colours = np.stack([darker_by(d) for d in (5.0, 19.3, 20.3, 30.0)])
    palette, is_skin = collapse_skin(colours, skin, 20.0)
    labels = np.arange(len(colours))[None]
    flat, darker = _others_as_skin(palette[labels], labels, is_skin, skin)
    assert np.abs(flat[0, 1] - flat[0, 2]).max() < 0.02, flat[0]  # either side of the bar: alike
    assert np.abs(flat[0] - skin).max() < 0.02, flat[0]  # the skin's, none a stroke of its own
    assert list(darker[0]) == [0.0, 0.0, 1.0, 1.0]  # past the bar: the shadow's candidates


def _commonest(pixels: np.ndarray) -> np.ndarray:
    """The commonest colour of ``pixels`` (N, 3), read to 1/64."""
    values, counts = np.unique(np.round(pixels * 64).astype(int), axis=0, return_counts=True)
    return values[np.argmax(counts)] / 64


@pytest.mark.parametrize("dark", [False, True], ids=["blond", "black"])
@pytest.mark.parametrize("style", INKED)
def test_hair_over_the_scalp_is_the_styles_flat_hair_not_quantised_with_the_skin(
    style: str, dark: bool
) -> None:
    """``scalp=hair``: the hair layer (synthesised strands, the photo's streaks) went into the flat
    styles' palette with the skin, and its light strands were made skin: a blond head came out as
    olive and beige camouflage with bars of skin colour on the back of the head. Now the hair is one
    colour of its own (in toon and comic with an ink line at its edge): no skin-coloured texel
    inside it, one tone away from its edge. Comic's halftone dotted dark hair all over (Grace
    Hopper's black hair a dot screen) and its darker strands (the astronaut's, camouflage again)."""
    import cv2
    from avatartex.engines.classic import repaint

    geo, texture, ctx = _completed(style)
    head = geo.frame.to_head(geo.positions)
    cover = (geo.mask & (head[..., 1] > 1.3)).astype(np.float32)  # a cap of hair over the scalp
    skin = repaint._skin_tone(texture.color, geo)
    # Blond clumps of strands, their light ones near the skin's colour, as the astronaut's hair is.
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    clumps = (0.5 + 0.25 * np.sin(xx * 0.15) + 0.25 * np.sin(yy * 0.11 + 1.0))[..., None]
    strands = np.array([0.09, 0.07, 0.06] if dark else [0.45, 0.36, 0.17], np.float32)
    hair = (1 - clumps) * strands + clumps * (strands * 2.5 if dark else skin)
    color = np.where(cover[..., None] > 0, hair, texture.color).astype(np.float32)
    inner = cv2.erode(cover.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    face = geo.mask & (head[..., 1] < 0.8) & (head[..., 1] > -1.6) & (geo.normals[..., 2] > 0.6)

    def skin_inside(hair_cover: np.ndarray | None) -> tuple[float, np.ndarray]:
        """The share of the hair's inner texels in the styled skin's colour, and those texels."""
        ctx.hair = hair_cover
        styled = ClassicRepaint().run(AtlasTexture(color, texture.confidence), ctx).color
        styled_skin = _commonest(styled[face])
        return float((np.abs(styled[inner] - styled_skin).max(axis=1) < 0.04).mean()), styled[inner]

    # Without the hair's cover the strands are quantised with the skin: what the test tells.
    if not dark:
        assert skin_inside(None)[0] > 0.05
    share, pixels = skin_inside(cover)
    assert share < 0.001
    tones = np.unique(np.round(pixels * 64).astype(int), axis=0, return_counts=True)[1]
    assert tones.max() >= 0.95 * len(pixels)  # the rest: the ink along the hair's edge


@pytest.mark.parametrize("style", INKED)
def test_flat_hair_is_painted_in_its_lit_strands_tone_not_the_gaps_between_them(style: str) -> None:
    """``scalp=hair`` in a flat style: the hair was painted in the median of its texels, which the dark
    gaps between strands and the hair's own shadow pull down: the astronaut's dark-blond hair came
    out olive (L* 40 where her photo's lit crown reads 52). Hair of dark gaps (three fifths, L* 25)
    between lit strands (L* 55): it is painted in the lit strands' lightness."""
    from avatartex.imaging import to_lab

    geo, texture, ctx = _completed(style)
    head = geo.frame.to_head(geo.positions)
    cover = (geo.mask & (head[..., 1] > 1.3)).astype(np.float32)
    xx = np.mgrid[0:SIZE, 0:SIZE][1]
    lit = np.float32([0.62, 0.50, 0.30])  # L* 55, a dark blond's lit strands
    gaps = np.float32([0.27, 0.21, 0.12])  # L* 25
    hair = np.where((xx % 5 < 2)[..., None], lit, gaps)
    color = np.where(cover[..., None] > 0, hair, texture.color).astype(np.float32)
    ctx.hair = cover
    styled = ClassicRepaint().run(AtlasTexture(color, texture.confidence), ctx).color
    inner = cv2.erode(cover.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    painted = to_lab(_commonest(styled[inner]).astype(np.float32)[None])[0]
    lit_lightness = to_lab(lit[None])[0][0]
    assert abs(painted[0] - lit_lightness) < 4.0, (painted, lit_lightness)


def _painterly_atlas() -> tuple[object, np.ndarray, object]:
    """The scene painted in painterly (the atlas geometry, its colour, the stage context)."""
    geo, texture, ctx = _completed("painterly")
    return geo, ClassicRepaint().run(texture, ctx).color, ctx


@pytest.mark.parametrize("faded", [False, True], ids=["as painted", "faded"])
def test_strokes_of_each_chart_meet_without_a_line_at_the_crown(faded: bool) -> None:
    """A style's filter paints each chart of the atlas on its own (painterly's strokes, its brush
    texture), and the caps agreed with the band only in their ring (the texels of triangles the bake
    reads from the band, ``atlas.harmonise_charts``): where the ring meets the cap's own texels, the
    two charts' strokes met in a dotted line round the crown (seen on the demo head). Each chart given
    strokes of its own (smooth noise, four texels across): across that edge neighbouring texels
    differed by 1.75 times what neighbours either side of it do; with the band faded into the caps'
    strokes at its edges (``atlas_filters.caps_into_band``, as every style filter's result is), by
    less than 1.3 times."""
    from avatartex import atlas_filters
    from avatartex.atlas import BAND, CROWN, harmonise_charts

    geo = head_atlas(SIZE)
    rng = np.random.default_rng(3)
    strokes = cv2.GaussianBlur(rng.standard_normal((SIZE, SIZE)).astype(np.float32), (0, 0), 4.0)
    strokes = 0.5 + strokes / (6 * strokes.std())
    painted = np.repeat(strokes[..., None], 3, axis=2)
    if faded:
        painted = atlas_filters.caps_into_band(painted, geo)
    final = harmonise_charts(geo, painted)
    cap = (geo.chart == CROWN) & geo.mask & (geo.tri_id >= 0)
    ring = cap & (geo.triangle_chart[np.maximum(geo.tri_id, 0)] == BAND)
    own = cap & ~ring

    def step(a: np.ndarray, b: np.ndarray) -> float:
        """Mean colour step between texels of ``a`` and their right or lower neighbours in ``b``."""
        steps = []
        for da, db, dc, dd in ((slice(None), slice(None), slice(None, -1), slice(1, None)),
                               (slice(None, -1), slice(1, None), slice(None), slice(None))):  # fmt: skip
            pair = (a[da, dc] & b[db, dd]) | (b[da, dc] & a[db, dd])
            steps.append(np.abs(final[da, dc] - final[db, dd]).sum(axis=-1)[pair])
        return float(np.concatenate(steps).mean())

    # Either side's own steps: the ring holds the band's strokes, finer in angle than the cap's.
    across, inside = step(ring, own), 0.5 * (step(ring, ring) + step(own, own))
    assert ring.sum() > 200
    assert (across < 1.3 * inside) == faded, (across, inside)


def test_painterly_strokes_on_smooth_skin_follow_the_heads_forms() -> None:
    """Painterly's strokes ran along the image's own edges, which on smooth skin are its noise's: a
    uniform swirl every way (the art director's QA). Where the skin has no edge of its own they follow
    the head's forms now (the lines of its shading under a light from the front and above): on the
    cheeks, forehead and scalp, most texels' strokes run in the forms' direction (of 4)."""
    from avatartex.engines.classic import repaint

    geo, painted, ctx = _painterly_atlas()
    rows = geo.band_rows
    forms = repaint.form_shading(geo)
    strokes = repaint._orientation_bins(repaint.luminance(painted), rows)
    shape_bins = repaint._orientation_bins(forms, rows)
    structure = repaint._structure_tensor(forms, rows)
    clear = (structure[..., 0] + structure[..., 2]) > np.percentile(structure[..., 0] + structure[..., 2], 50)
    features = np.zeros(geo.mask.shape, np.float32)
    for line in ctx.features().values():
        features = np.maximum(features, repaint.fill_polygon(geo.mask.shape, line))
    smooth = geo.mask & clear & (repaint._grown(features, 0.3 * _unit()) < 0.01)
    smooth[rows:] = False
    agree = float((strokes == shape_bins)[smooth].mean())
    assert smooth.sum() > 2000 and agree > 0.5, agree
    # The forms' structure is the mesh's alone: made once per atlas, not on every painterly request.
    assert repaint.form_flow(geo) is repaint.form_flow(geo)
    assert repaint.form_flow(geo, half=True).shape[0] == geo.mask.shape[0] // 2


def test_painterly_paints_hair_in_strokes_along_its_strands() -> None:
    """``scalp=hair`` in painterly: the Kuwahara filter's flat patches, a tenth of an eye distance
    across, merged the hair's strands into light and dark blotches (camouflage on the back of the
    astronaut's head). Hair of fine strands (a period of 6 texels) across the scalp: painted, its
    strands keep at least half their contrast."""
    geo, texture, ctx = _completed("painterly")
    head = geo.frame.to_head(geo.positions)
    cover = (geo.mask & (head[..., 1] > 1.3)).astype(np.float32)
    cover[geo.band_rows :] = 0.0  # the band's part, where the strands run down its columns
    xx = np.mgrid[0:SIZE, 0:SIZE][1]
    strands = 0.5 + 0.5 * np.sin(xx * (2 * np.pi / 6))
    hair = np.float32([0.25, 0.19, 0.10]) + strands[..., None] * np.float32([0.30, 0.25, 0.15])
    color = np.where(cover[..., None] > 0, hair, texture.color).astype(np.float32)
    ctx.hair = cover
    styled = ClassicRepaint().run(AtlasTexture(color, texture.confidence), ctx).color
    inner = cv2.erode(cover.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0

    def across(image: np.ndarray) -> float:
        """The mean difference of the green between texels three columns apart (a strand and a gap)."""
        green = image[..., 1]
        both = inner[:, 3:] & inner[:, :-3]
        return float(np.abs(green[:, 3:] - green[:, :-3])[both].mean())

    assert inner.sum() > 1000
    assert across(styled) > 0.5 * across(color), (across(styled), across(color))


@pytest.mark.parametrize("style", ["toon", "comic"])
def test_brows_are_saturated_as_the_styles_palette(style: str) -> None:
    """Toon's and comic's brows were filled in the photo's brow colour as it is, darkened: an ash brow
    (C* 17, the astronaut's) was a grey marker line beside the style's saturated skin. An ash brow
    painted into the texture comes out with its chroma raised as the style raises its palette's."""
    from avatartex.engines.classic import repaint
    from avatartex.features import fill_polygon
    from avatartex.imaging import to_lab

    geo, texture, ctx = _completed(style)
    drawn = ctx.drawn()
    brows = np.maximum(*(fill_polygon((SIZE, SIZE), drawn[name]) for name in ("right_brow", "left_brow")))
    ash = np.float32([0.60, 0.52, 0.46])  # C* about 10
    color = np.where(brows[..., None] > 0, ash, texture.color).astype(np.float32)
    styled = ClassicRepaint().run(AtlasTexture(color, texture.confidence), ctx).color
    inner = cv2.erode((brows > 0.99).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    inner &= repaint.draw_strokes((SIZE, SIZE), repaint.feature_strokes(drawn, _unit(), 1.0, style)) < 0.01

    def chroma(rgb: np.ndarray) -> float:
        return float(np.hypot(*to_lab(np.asarray(rgb, np.float32)[None])[0][1:]))

    saturation = ctx.style.classic["saturation"]
    painted = chroma(_commonest(styled[inner]))
    assert inner.sum() > 20 and painted > 0.9 * saturation * chroma(ash * 0.75), (painted, chroma(ash * 0.75))


@pytest.mark.parametrize("style", ["toon", "comic"])
def test_flat_hair_has_a_drawn_hairline_and_no_shadow_under_it(style: str) -> None:
    """``scalp=hair`` in a flat style: the photo's fringe, strand by strand, cut a ragged hairline that
    toon's ink traced; and the photo's darker hair counted as the style's shadow under the flat hair
    painted over it, so the bake filled a crown texel the atlas does not hold from the lit texels
    nearest it, the skin's: a dotted line of skin across the hair. A cap of dark hair with a toothed
    hairline (teeth 0.04 eye distances): the hairline's teeth are gone, and no shadow is handed to the
    bake under the hair."""
    from avatartex.engines.classic import repaint

    geo, texture, ctx = _completed(style)
    head = geo.frame.to_head(geo.positions)
    teeth = 0.04 * (np.floor(head[..., 0] / 0.04) % 2)
    cover = (geo.mask & (head[..., 1] > 1.1 + teeth)).astype(np.float32)
    color = np.where(cover[..., None] > 0, np.float32([0.12, 0.09, 0.07]), texture.color).astype(np.float32)
    ctx.hair = cover
    ClassicRepaint().run(AtlasTexture(color, texture.confidence), ctx)
    drawn = repaint.flat_hair_cover(ctx)

    front = geo.mask[: geo.band_rows] & (np.abs(head[: geo.band_rows, :, 0]) < 0.8)
    front &= geo.normals[: geo.band_rows, :, 2] > 0.5
    columns = np.flatnonzero(front.sum(axis=0) > 20)

    def hairline(alpha: np.ndarray) -> np.ndarray:
        """Per front column, the first row from the top where the hair ends."""
        rows = []
        for c in columns:
            held = np.flatnonzero(front[:, c])
            ends = held[alpha[held, c] < 0.5]
            rows.append(ends[0] if len(ends) else held[-1])
        return np.asarray(rows, np.float32)

    # The teeth, not the hairline's course over the forehead: its bends from column to column, over
    # the forehead (not where the hairline turns down past the temples).
    given, cut = hairline(cover), hairline(drawn)
    forehead = np.abs(given - np.median(given)) < 0.15 * _unit()
    ragged, smooth = (np.abs(np.diff(rows[forehead], 2)).sum() for rows in (given, cut))
    assert forehead.sum() > 40 and smooth < 0.3 * ragged, (smooth, ragged)
    inner = (drawn > 0.99) & geo.mask
    assert inner.sum() > 1000 and np.asarray(ctx.style_shadow.atlas_map)[inner].max() < 0.01


def test_a_warm_skin_is_not_pushed_past_a_skins_chroma_and_a_pale_one_is_saturated_as_before() -> None:
    """``repaint.styled_skin``: toon's saturation of 1.25 took Grace Hopper's warm print (her cheek
    C* 45) to 55, anime's to 58, a fake tan; a skin of C* 20-26 is saturated exactly as the palette."""
    from avatartex.engines.classic.repaint import SKIN_CHROMA_KNEE, _saturate, styled_skin
    from avatartex.imaging import to_lab

    def chroma(rgb: np.ndarray) -> float:
        return float(np.hypot(*to_lab(np.asarray(rgb, np.float32))[1:]))

    warm = np.array([204, 120, 84], np.float32) / 255
    assert chroma(_saturate(warm[None], 1.25)[0]) > 54
    assert chroma(warm) - 0.5 <= chroma(styled_skin(warm, 1.25)) <= chroma(warm) + 2.0
    for pale in ([190, 150, 130], [230, 180, 150]):
        pale = np.array(pale, np.float32) / 255
        assert chroma(_saturate(pale[None], 1.25)[0]) < SKIN_CHROMA_KNEE
        assert np.allclose(styled_skin(pale, 1.25), np.clip(_saturate(pale[None], 1.25)[0], 0, 1))


@pytest.mark.parametrize("style", INKED)
def test_each_eye_is_drawn_with_an_iris_and_a_pupil(style: str) -> None:
    """toon's and comic's eyes were their outline round skin or the sclera's colour (the eye's few
    texels went into the palette's skin or white): closed or blank eyes. Inside each eye's contour,
    every style draws a pupil (dark) and the sclera (light) now, as anime did."""
    _, _, _, lines, _ = _scene()
    styled = _styled(style)
    lum = styled @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    for eye in ("right_eye", "left_eye"):
        inside = features.fill_polygon(lum.shape, lines[eye]) > 0.5
        inside &= features.distance_to_lines(lum.shape, [lines[eye]]) > 0.04 * _unit()  # not the lashes
        assert inside.sum() > 30, eye
        assert (lum[inside] < 0.15).sum() >= 4, (style, eye)  # the pupil
        assert (lum[inside] > 0.8).mean() > 0.1, (style, eye)  # the sclera


def test_comics_shadows_are_a_tone_with_a_screen_not_dark_dots_that_read_as_stubble() -> None:
    """Comic shaded with dark halftone dots alone (0.55 of the colour taken out under each): on a
    woman's chin they were a goatee, under the nose a moustache, on the throat a neck-beard (QA, every
    head and skin tone). Its shadows are a flat tone of the colour under them now, the screen printed
    lightly over it: on the face's shadows the dots' texel-to-texel contrast is under half of what
    it was, and the shadow still as dark on the whole."""
    import dataclasses

    from avatartex.imaging import luminance

    geo, texture, coords, lines, _ = _scene()
    head = geo.frame.to_head(geo.positions)
    face = geo.mask & (geo.normals[..., 2] > 0.5) & (head[..., 1] < 1.0) & (head[..., 1] > -2.2)

    def comic(**classic) -> tuple[np.ndarray, np.ndarray]:
        ctx = make_ctx(geo, "comic", astronaut(), coords, seed=1)
        ctx.style = dataclasses.replace(ctx.style, classic={**ctx.style.classic, **classic})
        ctx.feature_lines = lines
        out = texture
        for stage in (ClassicInpaint(), ClassicLatent(), ClassicRepaint()):
            out = stage.run(out, ctx)
        return luminance(np.asarray(out.color, np.float32)), np.asarray(ctx.style_shadow.atlas_map)

    def figures(lum: np.ndarray, shadow: np.ndarray) -> tuple[float, float]:
        """Within the face's shadows: the dots' contrast (a texel against its 3x3 mean), and how much
        darker the shadow is than the lit skin."""
        import cv2

        shaded, lit = face & (shadow > 0.9), face & (shadow < 0.05)
        assert shaded.sum() > 200 and lit.sum() > 2000
        local = lum - cv2.blur(lum, (3, 3))
        return float(np.std(local[shaded])), float(np.median(lum[lit]) - np.mean(lum[shaded]))

    dots_before, dark_before = figures(*comic(shadow=0.0, halftone_amount=0.55))
    dots_now, dark_now = figures(*comic())
    assert dots_now < 0.5 * dots_before, (dots_now, dots_before)
    assert dark_now > 0.8 * dark_before, (dark_now, dark_before)


def test_comics_screen_is_as_dense_as_the_fold_is_deep_not_a_patch_past_a_bar() -> None:
    """Comic printed its shadow tone and a full halftone screen wherever the head's fold passed one
    bar: a shallow fold just past it (the crease beside a nose wing, the chin's under the lower lip,
    along the jaw) was as dark as an eye socket, a hard-edged patch of dots that read as blotched
    skin, worse on darker skin (QA: a darkened astronaut on the demo head). Now the screen grows with
    the fold's depth, from no dots at the bar, and the flat tone is the deep folds' alone: texels just
    past the bar are darkened a fraction as much as the deepest folds, which keep their tone."""
    from avatartex.engines.classic.repaint import head_forms
    from avatartex.imaging import luminance

    geo, _, _, lines, _ = _scene()
    forms = head_forms(geo)
    level = forms["cavity"] * forms["head"] * 12.0 + np.clip(forms["down"] - 0.25, 0, 1) * 1.5
    threshold = 0.45  # comic's shadow_threshold
    away = features.distance_to_lines(level.shape, list(lines.values())) > 0.1 * _unit()
    skin = geo.mask & away & (forms["front"] > 0.5)
    lum = luminance(_styled("comic"))
    lit = float(np.median(lum[skin & (level < threshold - 0.2)]))
    just_past = skin & (level > threshold) & (level < threshold + 0.1)
    deep = skin & (level > threshold + 0.6)
    assert just_past.sum() > 300 and deep.sum() > 100, (int(just_past.sum()), int(deep.sum()))
    shallow_dark, deep_dark = lit - lum[just_past].mean(), lit - lum[deep].mean()
    assert deep_dark > 0.08, deep_dark  # the deep folds: the tone and the full screen
    assert shallow_dark < 0.3 * deep_dark, (shallow_dark, deep_dark)


def test_animes_shadow_falls_under_the_jaw_not_on_the_face() -> None:
    """Anime's one shadow tone followed every fold of the head: a mauve soul patch under the lower lip,
    strips under the nose, tear streaks from the inner eye corners, patches in the sockets (QA). Now
    it falls under the chin and the jaw alone: no shaded texel above the lower lip's bottom, and a
    shadow under the jaw still."""
    _, ctx = _run("anime")
    geo, lines = ctx.atlas, ctx.drawn()
    shaded = (np.asarray(ctx.style_shadow.atlas_map) > 0.5) & geo.mask
    heights = geo.frame.to_head(geo.positions)[..., 1]
    xy = np.clip(np.floor(lines["lips_outer"]).astype(int), 0, geo.size - 1)
    lip = geo.frame.to_head(geo.positions[xy[:, 1], xy[:, 0]])[:, 1].min()
    assert shaded.sum() > 100  # under the jaw
    assert (heights[shaded] > lip).sum() == 0, (heights[shaded] > lip).sum()


def test_painterly_paints_the_eyes_finer_than_the_skin() -> None:
    """Painterly's flat patches, a tenth of an eye distance across, made each iris a brown smudge with
    no pupil, sclera or lid line (QA: "dead eyes"). The eyes are painted finer now: inside them the
    fine detail (the spread of luminance about its blur) is most of the photoreal texture's, and well
    above what the filter alone left (``focal_detail`` 0)."""
    import dataclasses

    from avatartex.imaging import luminance

    geo, texture, coords, lines, _ = _scene()

    def styled(style: str, **classic) -> np.ndarray:
        ctx = make_ctx(geo, style, astronaut(), coords, seed=1)
        ctx.style = dataclasses.replace(ctx.style, classic={**ctx.style.classic, **classic})
        ctx.feature_lines = lines
        out = texture
        for stage in (ClassicInpaint(), ClassicLatent(), ClassicRepaint()):
            out = stage.run(out, ctx)
        return luminance(np.asarray(out.color, np.float32))

    def spread(lum: np.ndarray) -> float:
        """The eyes' fine detail: the spread of luminance about its 1.5-texel blur inside them."""
        import cv2

        inside = np.zeros(lum.shape, bool)
        for eye in ("right_eye", "left_eye"):
            inside |= features.fill_polygon(lum.shape, lines[eye]) > 0.5
        assert inside.sum() > 60
        return float(np.std((lum - cv2.GaussianBlur(lum, (0, 0), 1.5))[inside]))

    photo, finer, filtered = (
        spread(styled("photoreal")),
        spread(styled("painterly")),
        spread(styled("painterly", focal_detail=0.0)),
    )
    assert finer > 0.7 * photo and finer > 1.3 * filtered, (finer, photo, filtered)


def test_brow_strokes_are_one_arc_without_a_hook() -> None:
    """Comic's and anime's brow strokes followed the brow's midline, which hooks up at the brow's head
    where the detector's brow widens: an ink tick at each inner end that gave every face a frown
    (QA). ``features.brow_arc`` bends one way along the brow, without kinks; the midline did not."""

    def bends(line: np.ndarray) -> tuple[int, float]:
        """How often the line's turning changes direction, and its sharpest turn (degrees)."""
        step = np.diff(line.astype(np.float64), axis=0)
        turn = np.diff(np.unwrap(np.arctan2(step[:, 1], step[:, 0])))
        turn = turn[np.abs(turn) > 1e-3]
        return int((np.sign(turn) != np.sign(turn.sum())).sum()), float(np.degrees(np.abs(turn).max()))

    _, _, _, lines, _ = _scene()
    for brow in ("right_brow", "left_brow"):
        flips, sharpest = bends(features.brow_arc(lines[brow]))
        assert flips == 0 and sharpest < 5.0, (brow, flips, sharpest)
        assert bends(features.brow_midline(lines[brow]))[1] > 10.0  # what the strokes drew before


def test_comics_brows_are_strokes_not_outlined_capsules() -> None:
    """Comic outlined each brow's flat fill: grey capsules with a black rim, tabs from the side (QA).
    A brow is a stroke along its middle now: the rim away from the middle carries no ink."""
    _, _, _, lines, _ = _scene()
    unit = _unit()
    ink_distance = _distance_to_mask(_ink("comic"))
    for brow in ("right_brow", "left_brow"):
        contour, middle = lines[brow], features.brow_midline(lines[brow])
        along = features.distance_to_lines(ink_distance.shape, [middle])
        xy = np.round(contour - 0.5).astype(int)
        rim = along[xy[:, 1], xy[:, 0]] > 0.06 * unit  # the outline's points away from the middle
        assert rim.sum() >= 5, brow
        inked = ink_distance[xy[:, 1], xy[:, 0]][rim] <= 1.0
        assert inked.mean() < 0.3, (brow, inked.mean())
        covered = ink_distance[
            np.round(middle[:, 1] - 0.5).astype(int), np.round(middle[:, 0] - 0.5).astype(int)
        ]
        assert (covered <= 1.0).mean() > 0.7, brow  # the stroke itself


@pytest.mark.parametrize("style", INKED)
def test_a_drawn_iris_is_never_red(style: str) -> None:
    """The flat styles draw the iris in the colour of the photo's eye's darkest part, which in Grace
    Hopper's took the red of her lids' rims: red eyes. No iris is red: its hue is turned to brown."""
    from avatartex.imaging import to_lab
    from avatartex.regions import IRIS_RED_HUES

    geo, texture, coords, lines, _ = _scene()
    ctx = make_ctx(geo, style, astronaut(), coords, seed=1)
    ctx.feature_lines = lines
    for stage in (ClassicInpaint(), ClassicLatent()):
        texture = stage.run(texture, ctx)
    color = np.array(texture.color, np.float32, copy=True)
    for eye in ("right_eye", "left_eye"):
        color[features.fill_polygon(geo.mask.shape, lines[eye]) > 0.5] = (0.30, 0.08, 0.07)  # dark red
    styled = ClassicRepaint().run(AtlasTexture(color, texture.confidence), ctx).color
    for eye in ("right_eye", "left_eye"):
        inside = features.fill_polygon(geo.mask.shape, lines[eye]) > 0.5
        lab = to_lab(styled[inside])
        chroma = np.hypot(lab[:, 1], lab[:, 2])
        coloured = lab[(chroma > 12) & (lab[:, 0] > 12) & (lab[:, 0] < 70)]  # the iris, not pupil nor sclera
        assert len(coloured) >= 4, (style, eye)
        hue = np.median(np.degrees(np.arctan2(coloured[:, 2], coloured[:, 1])))
        assert hue >= IRIS_RED_HUES[1] - 10, (style, eye, hue)  # its edges mix with the lashes


@pytest.mark.parametrize("style", ("toon", "comic"))
def test_the_photos_red_folds_on_the_face_become_the_skins_own_tones(style: str) -> None:
    """A photo's deep folds and wrinkles, de-lit red (Grace Hopper's: red bars by her nose, blotches
    on her chin in toon and comic), are no colour of a flat style's head: where the photo shows
    them, the styled texture keeps the styled skin's hue and is at most as saturated as it."""
    from avatartex.imaging import to_lab

    geo, texture, coords, lines, _ = _scene()
    ctx = make_ctx(geo, style, astronaut(), coords, seed=1)
    ctx.feature_lines = lines
    for stage in (ClassicInpaint(), ClassicLatent()):
        texture = stage.run(texture, ctx)
    unit = _unit()
    # Two folds from beside the nose towards the mouth's corners, a few texels wide, dark red.
    nose, lips = lines["nose"], lines["lips_outer"]
    folds = np.zeros(geo.mask.shape, np.float32)
    for side in (-1, 1):
        top = np.array([nose[:, 0].mean() + side * 0.45 * unit, nose[:, 1].mean()])
        bottom = np.array([lips[:, 0].mean() + side * 0.75 * unit, lips[:, 1].max() + 0.1 * unit])
        line = np.linspace(top, bottom, 40)
        folds = np.maximum(
            folds, (features.distance_to_lines(folds.shape, [line]) < 0.07 * unit).astype(np.float32)
        )
    red = np.array([0.55, 0.22, 0.16], np.float32)
    color = texture.color * (1 - folds[..., None]) + red * folds[..., None]
    styled = ClassicRepaint().run(AtlasTexture(color.astype(np.float32), texture.confidence), ctx).color
    head = geo.frame.to_head(geo.positions)
    face = geo.mask & (head[..., 1] < 0.8) & (head[..., 1] > -1.6) & (geo.normals[..., 2] > 0.6)
    skin = _commonest(styled[face])  # the style's own skin tone
    on = (folds > 0.5) & (features.distance_to_lines(folds.shape, list(lines.values())) > 0.05 * unit)
    assert on.sum() > 100
    lab, skin_lab = to_lab(styled[on]), to_lab(skin)
    hue = np.degrees(np.arctan2(lab[:, 2], lab[:, 1]))
    skin_hue = np.degrees(np.arctan2(skin_lab[2], skin_lab[1]))
    chroma, skin_chroma = np.hypot(lab[:, 1], lab[:, 2]), np.hypot(skin_lab[1], skin_lab[2])
    # Before: toon's folds 17° off the skin's hue at C* 35.5 (its skin's 29.8), comic's 10° at 35.3
    # (30.9); now toon's are its cel shadow (9°: the shadow's tint is a little redder), comic's dots.
    assert np.percentile(np.abs(hue - skin_hue), 90) < 12, np.percentile(np.abs(hue - skin_hue), 90)
    assert np.percentile(chroma, 90) < skin_chroma * 1.05 + 1, (np.percentile(chroma, 90), skin_chroma)


def _shifted(lines: dict[str, np.ndarray], by: np.ndarray) -> dict[str, np.ndarray]:
    """The lines a head whose features lie ``by`` texels from the photo's would draw along."""
    moved = set(features.DRAWN_ON_THE_HEAD)
    return {name: (line + by).astype(np.float32) if name in moved else line for name, line in lines.items()}


@lru_cache(maxsize=4)
def _drawn_elsewhere(style: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The scene in ``style`` with the head's lips and nose 0.12 eye distances below the photo's (a
    registration that far off): the texture and the lines it drew along."""
    geo, texture, coords, lines, _ = _scene()
    drawn = _shifted(lines, np.array([0.0, 0.12 * _unit()], np.float32))
    ctx = make_ctx(geo, style, astronaut(), coords, seed=1)
    ctx.feature_lines = lines
    ctx.drawn_source = lambda photo: _shifted(photo, np.array([0.0, 0.12 * _unit()], np.float32))
    for stage in (ClassicInpaint(), ClassicLatent(), ClassicRepaint()):
        texture = stage.run(texture, ctx)
    return texture.color, drawn


@pytest.mark.parametrize("style", INKED)
def test_flat_styles_draw_the_lips_and_nose_on_the_heads_own_and_leave_no_ghost_of_the_photos(
    style: str,
) -> None:
    """Grace Hopper on the scanned head, registered a little off, left her lower lip's shadow as a
    blotch under the head's lip: the flat styles draw the lips and the nose where the head has them
    (``features.drawn_lines``), the lip colour still the photo's, and where the photo's own lips were,
    skin, not their ghost."""
    _, _, _, photo, _ = _scene()
    styled, drawn = _drawn_elsewhere(style)
    unit = _unit()
    colour = np.array(INK_COLOURS[style], np.float32)
    ink = (np.abs(styled - colour).max(axis=-1) < 0.06) & head_atlas(SIZE).mask
    distance = _distance_to_mask(ink)
    # Where the lips meet is inked along the drawn lips, not along the photo's.
    for lines, low, high in ((drawn, 0.8, 1.0), (photo, 0.0, 0.3)):
        xy = np.round(features.arc(lines["lips_inner"], 0.6, 0.9) - 0.5).astype(int)
        covered = (distance[xy[:, 1], xy[:, 0]] <= max(0.02 * unit, 1.5)).mean()
        assert low <= covered <= high, (style, covered)
    # The drawn lips take the photo's lip colour; the photo's lips, where the drawn ones are not, skin.
    shape = ink.shape
    from avatartex.imaging import to_lab

    lab = to_lab(styled)
    drawn_lips = features.fill_polygon(shape, drawn["lips_outer"]) > 0.5
    drawn_lips &= ~(features.fill_polygon(shape, drawn["lips_inner"]) > 0.05)
    drawn_lips &= features.distance_to_lines(shape, [drawn["lips_outer"], drawn["lips_inner"]]) > 0.03 * unit
    ghost = features.fill_polygon(shape, photo["lips_outer"]) > 0.5
    ghost &= features.fill_polygon(shape, drawn["lips_outer"]) < 0.02
    ghost &= features.distance_to_lines(shape, [drawn["lips_outer"]]) > 0.06 * unit
    cheek = features.distance_to_lines(shape, [photo["lips_outer"]]) < 0.4 * unit
    cheek &= features.fill_polygon(shape, photo["lips_outer"]) < 0.02
    cheek &= features.fill_polygon(shape, drawn["lips_outer"]) < 0.02
    assert ghost.sum() > 20 and drawn_lips.sum() > 20, (ghost.sum(), drawn_lips.sum())
    skin_a = np.median(lab[cheek][:, 1])
    assert np.median(lab[drawn_lips][:, 1]) > skin_a + 3.0, style  # redder than the skin: lips
    assert abs(np.median(lab[ghost][:, 1]) - skin_a) < 3.0, style  # the skin's own


def test_drawn_lines_are_the_heads_own_lips_and_nose_and_the_photos_eyes() -> None:
    geo, _, _, photo, _ = _scene()
    assert features.drawn_lines(geo, photo, None) == photo
    assert features.drawn_lines(geo, photo, np.full((468, 3), np.nan)) == photo
    # A head's landmarks in front of its face: its lips and nose are drawn through them.
    from avatartex.atlas import directions

    rng = np.random.default_rng(0)
    local = rng.normal(size=(468, 3)) * 0.2 + np.array([0.0, 0.0, 1.0])
    points = geo.frame.origin + (local @ geo.frame.axes) * geo.frame.scale
    drawn = features.drawn_lines(geo, photo, points)
    theta, phi = directions(geo.frame.to_head(points))
    own = geo.layout.band_xy(theta, phi)
    for name in ("nose", "lips_outer"):
        first = own[features.FEATURES[name][0][0]]
        assert np.abs(drawn[name][0] - first).max() < 1e-3, name  # the curve runs through them
    for name in ("right_eye", "left_eye", "right_brow", "left_brow"):
        assert drawn[name] is photo[name], name
    # One jaw point the mesh's renders did not place (the stylised demo head's, below its ear): the
    # jaw is still the head's own, through its neighbours (comic inked the photo's across its cheeks).
    jaw = list(features.FEATURES["jaw"][0])
    missing = points.copy()
    missing[jaw[2]] = np.nan
    drawn = features.drawn_lines(geo, photo, missing)
    assert np.abs(drawn["jaw"][0] - own[jaw[0]]).max() < 1e-3
    assert np.abs(drawn["jaw"][-1] - own[jaw[-1]]).max() < 1e-3
    middle = drawn["jaw"][2 * features._SUBDIVIDE]  # where the missing point would be
    assert np.linalg.norm(middle - (own[jaw[1]] + own[jaw[3]]) / 2) < 0.25 * np.linalg.norm(
        own[jaw[1]] - own[jaw[3]]
    )
    # An end unknown: the line goes on from its neighbour by the neighbours' step.
    for end, neighbour, next_one in ((0, 1, 2), (-1, -2, -3)):
        missing = points.copy()
        missing[jaw[end]] = np.nan
        tip = features.drawn_lines(geo, photo, missing)["jaw"][end]
        expected = 2 * own[jaw[neighbour]] - own[jaw[next_one]]
        assert np.linalg.norm(tip - expected) < 1e-3
    missing = points.copy()
    missing[jaw[:6]] = np.nan  # more than a quarter unknown: the photo's
    assert features.drawn_lines(geo, photo, missing)["jaw"] is photo["jaw"]


def test_the_noses_ink_stops_where_the_nostril_wings_climb() -> None:
    """The stylised demo head's wide nostrils: the nose's ink ran on from its underside up the wings'
    outer edge into the cheek's crease, two black claws in toon and comic. It is kept from its
    middle outwards as long as it does not climb (up the atlas, y down) more steeply than
    ``NOSE_RISE``; a nose's gently curving underside stays whole."""
    from avatartex.engines.classic import repaint

    x = np.linspace(-1.0, 1.0, 41)
    gentle = np.c_[500 + 30 * x, 500 - 12 * x**2]  # rises 0.8 at most, at its ends: kept
    assert len(repaint._without_rise(gentle, repaint.NOSE_RISE)) == len(gentle)
    # The underside, then each end climbing steeply for a third of the way (the claws).
    climb = np.where(np.abs(x) > 0.6, (np.abs(x) - 0.6) * 60.0, 0.0)
    clawed = np.c_[
        500 + 30 * np.clip(x, -0.6, 0.6) + 5 * np.sign(x) * (np.abs(x) > 0.6) * (np.abs(x) - 0.6), 500 - climb
    ]
    kept = repaint._without_rise(clawed, repaint.NOSE_RISE)
    assert kept[:, 1].min() > 500 - 2.0  # none of the claws
    assert np.ptp(kept[:, 0]) > 0.9 * 36  # the underside, wing to wing
    strokes = repaint.feature_strokes({"nose": clawed}, 100.0, 1.0, "toon")
    assert strokes[0].points[:, 1].min() > 500 - 2.0  # the toon's and comic's nose ink


@pytest.mark.parametrize("style", ["toon", "comic"])
def test_no_shadow_from_the_photos_lashes_round_the_eyes(style: str) -> None:
    """The photo's lashes, liner and the shadow at an eye's outer corner reach past the landmarks'
    outline: toon drew them as a brown blob past the corner (the demo heads with the astronaut),
    comic as dots. Round each eye (``repaint.eye_rims``, outside the eye) the cel shadow is the
    head's forms' alone."""
    from avatartex.engines.classic import repaint

    shadow, forms = _cel_shadow(style)
    _, _, _, lines, _ = _scene()
    shape = shadow.shape
    rims = repaint.eye_rims(lines, shape, _unit()) > 0.5
    for eye in ("right_eye", "left_eye"):
        rims &= features.fill_polygon(shape, lines[eye]) < 0.5
    assert rims.sum() > 100
    beyond_forms = (shadow > 0.5) & (forms < 0.5)
    assert beyond_forms[rims].mean() < 0.01, (style, beyond_forms[rims].mean())


@pytest.mark.parametrize("style", ["toon", "comic"])
def test_no_shadow_from_skin_a_tinted_lens_darkens(style: str) -> None:
    """Grace Hopper's amber lenses darken the skin seen through them (the projection takes their tint
    out, not their darkness): toon and comic drew it as shadow blotches under her eyes. The skin
    seen through a lens (``StageContext.lenses``) gives no shadow of the photo's tone: a darker patch
    under the right eye is shadow without the lens, none beyond the head's forms with it."""
    import dataclasses

    geo, texture, ctx = _completed(style)
    lines = ctx.drawn()
    centre = lines["right_eye"][:-1].mean(axis=0) + np.float32([0.0, 0.3 * _unit()])
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    patch = (np.hypot(xx - centre[0], yy - centre[1]) < 0.2 * _unit()) & geo.mask
    color = texture.color.copy()
    # Toon's shadow follows the skin's tone; comic's only colours unlike the skin's (a greyer dark).
    color[patch] *= np.float32([0.6, 0.6, 0.6] if style == "toon" else [0.4, 0.42, 0.5])
    forms = __import__("avatartex.engines.classic.repaint", fromlist=["x"])._shadow_shapes(
        geo, 1.0, ctx.style.classic.get("shadow_threshold", 0.6)
    )

    def shadow_beyond_forms(lenses: np.ndarray | None) -> float:
        run = dataclasses.replace(ctx, lenses=lenses)
        ClassicRepaint().run(AtlasTexture(color, texture.confidence), run)
        shadow = np.asarray(run.style_shadow.atlas_map)
        return float(((shadow > 0.5) & (forms < 0.5))[patch].mean())

    lens = (np.hypot(xx - centre[0], yy - centre[1]) < 0.45 * _unit()).astype(np.float32)
    assert shadow_beyond_forms(None) > 0.2
    assert shadow_beyond_forms(lens) < 0.01


@pytest.mark.parametrize("style", ["toon"])  # comic's five colours merge this patch with the skin
def test_skin_seen_through_a_lens_is_the_skins_one_colour(style: str) -> None:
    """With the lens's tint taken out, what was left of it (lighter, pinker skin under the lens) made
    a palette colour of its own and left patches round Grace Hopper's eyes in toon, and a dash on her
    cheek. Through a lens (``StageContext.lenses``) the skin is the style's one skin colour: a
    lighter, pinker patch under the right eye comes out as the skin round it. (A palette colour of
    its own just inside the skin's bar, it stayed partly its own without the lens; toon makes every
    palette colour the skin's now, ``repaint._others_as_skin``, the lens or none.)"""
    import dataclasses

    geo, texture, ctx = _completed(style)
    eye = ctx.drawn()["right_eye"]
    centre = eye[:-1].mean(axis=0) + np.float32([0.0, 0.5 * _unit()])
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    near = np.hypot(xx - centre[0], yy - centre[1])
    patch = (near < 0.35 * _unit()) & geo.mask
    color = texture.color.copy()
    color[patch] = np.clip(color[patch] * np.float32([1.25, 1.0, 1.15]) + 0.06, 0.0, 1.0)
    head = geo.frame.to_head(geo.positions)
    cheek = geo.mask & (np.abs(head[..., 0]) < 0.8) & (head[..., 1] < 0.0) & (head[..., 1] > -1.2)
    eye_area = features.fill_polygon((SIZE, SIZE), eye) > 0

    def patch_off_skin(lenses: np.ndarray | None) -> float:
        run = dataclasses.replace(ctx, lenses=lenses)
        styled = ClassicRepaint().run(AtlasTexture(color, texture.confidence), run).color
        skin = _commonest(styled[cheek & (near > 0.6 * _unit())])
        shadow = np.asarray(run.style_shadow.atlas_map) > 0.01
        plain = patch & ~shadow & (cv2.dilate(eye_area.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0)
        assert plain.sum() > 300
        return float((np.abs(styled[plain] - skin).max(axis=1) > 0.02).mean())

    lens = (near < 0.5 * _unit()).astype(np.float32)
    assert patch_off_skin(None) < 0.02
    assert patch_off_skin(lens) < 0.02


@pytest.mark.parametrize("style,reads", [("photoreal", False), ("painterly", False), ("toon", True)])
def test_the_lenses_are_found_only_for_the_styles_that_read_them(style: str, reads: bool) -> None:
    """Finding which texels the photo shows through a lens (``glasses.lens_at`` over every texel:
    61 ms at 1024²) was done on every request with glasses, whatever the style; only toon and comic
    read it. It is found on first use (``StageContext.lens_cover``), once, and what the style gets is
    the same as when given outright."""
    import dataclasses

    geo, texture, ctx = _completed(style)
    lens = np.zeros(geo.mask.shape, np.float32)
    lens[geo.mask.shape[0] // 3 : geo.mask.shape[0] // 2, : geo.mask.shape[1] // 4] = 1.0
    calls = []

    def source() -> np.ndarray:
        calls.append(1)
        return lens

    lazy = dataclasses.replace(ctx, lenses=None, lenses_source=source)
    styled = ClassicRepaint().run(AtlasTexture(texture.color.copy(), texture.confidence), lazy).color
    assert len(calls) == int(reads)
    if reads:
        given = dataclasses.replace(ctx, lenses=lens, lenses_source=None)
        outright = ClassicRepaint().run(AtlasTexture(texture.color.copy(), texture.confidence), given).color
        assert np.array_equal(styled, outright)


def test_a_wider_heads_chest_is_no_form_of_its_head() -> None:
    """The scanned bust made 1.3 times wider and 0.85 times as tall: its eyes further apart, every
    height in eye distances shrank by a third, its chest's notch rose into the heights of the jaw's
    underside, and anime drew a red V there. Heights are read stretched by how short the face is
    (``HeadFrame.stretch``, from how far the mouth lies below the eyes)."""
    from avatartex.atlas import MOUTH_BELOW_TYPICAL, HeadFrame
    from avatartex.engines.classic import repaint

    eyes = np.array([[-0.5, 0.0, 0.0], [0.5, 0.0, 0.0]])
    nose = np.array([0.0, -0.6, 0.5])
    typical = HeadFrame.from_landmarks(eyes[0], eyes[1], np.array([0.0, -1.05, 0.1]), nose)
    assert typical.mouth_below == pytest.approx(MOUTH_BELOW_TYPICAL, rel=0.01) and typical.stretch == 1.0
    wide = HeadFrame.from_landmarks(eyes[0] * 1.3, eyes[1] * 1.3, np.array([0.0, -1.05 * 0.85, 0.1]), nose)
    assert wide.stretch == pytest.approx(1.3 / 0.85, rel=0.12)
    taller = HeadFrame.from_landmarks(eyes[0], eyes[1], np.array([0.0, -1.4, 0.1]), nose)
    assert taller.stretch == 1.0  # a longer face is read as it is
    # A point facing straight down, no fold, as far below the eyes as a typical chest's notch is
    # (4 eye distances) on the wider head: in eye distances 4 x 0.85 / 1.3.
    for frame, expected in ((typical, "head"), (wide, "chest")):
        geo = head_atlas(SIZE)
        geo = dataclasses.replace(geo, frame=dataclasses.replace(geo.frame, mouth_below=frame.mouth_below))
        ctx = make_ctx(geo, "anime", astronaut(), None)
        repaint._keep_shadow(ctx, np.zeros(geo.mask.shape, np.float32), 0.55)
        f = geo.frame
        height = -2.6 if expected == "head" else -4.0 * 0.85 / 1.3 - 0.1
        point = f.origin + f.scale * (np.array([[0.0, height, 0.3]]) @ f.axes)
        level = ctx.style_shadow.at(-f.axes[1][None], np.zeros(1, np.float32), point)[0]
        assert (level > 0.5) == (expected == "head"), (expected, level)


@pytest.mark.parametrize("style", ["toon", "comic"])
def test_no_moustache_from_the_photos_upper_lip_and_smile_folds(style: str) -> None:
    """The photo's darker skin between the nose and the upper lip (fine wrinkles, down, a top light's
    shadow under the nose) and along deep smile folds drew comic's halftone and toon's cel shadow as
    a moustache on Grace Hopper's face. The astronaut with such shadows painted on (half as light):
    within ``repaint.around_mouth`` the shadow is the head's forms' alone."""
    import cv2
    from avatartex.engines.classic import repaint
    from avatartex.face import LIPS_OUTER, MOUTH_LEFT, MOUTH_RIGHT, NOSE_LOWER

    geo, _, _, lines, landmarks = _scene()
    portrait = astronaut().copy()
    lip = landmarks[list(LIPS_OUTER), :2]
    nose = landmarks[list(NOSE_LOWER), :2]
    painted = np.zeros(portrait.shape[:2], np.float32)
    cv2.fillPoly(painted, [np.round(np.concatenate([nose, lip[10:], lip[:1]])).astype(np.int32)], 1.0)
    iod = np.linalg.norm(landmarks[33, :2] - landmarks[263, :2])
    for wing, corner in ((nose[0], landmarks[MOUTH_RIGHT, :2]), (nose[-1], landmarks[MOUTH_LEFT, :2])):
        end = corner + 0.4 * (corner - wing)
        cv2.line(
            painted,
            tuple(np.round(wing).astype(int)),
            tuple(np.round(end).astype(int)),
            1.0,
            max(2, int(0.08 * iod)),
        )
    portrait = portrait * (1.0 - 0.5 * cv2.GaussianBlur(painted, (0, 0), 2.0))[..., None]
    texture, coords = frontal_texture(geo, portrait)
    ctx = make_ctx(geo, style, portrait, coords, seed=1)
    ctx.feature_lines = lines
    for stage in (ClassicInpaint(), ClassicLatent(), ClassicRepaint()):
        texture = stage.run(texture, ctx)
    shadow = np.asarray(ctx.style_shadow.atlas_map)
    threshold = ctx.style.classic.get("shadow_threshold", 0.6 if style == "toon" else 0.45)
    forms = repaint._shadow_shapes(geo, 1.0, threshold)
    zone = repaint.around_mouth(lines, shadow.shape, _unit()) > 0.5
    assert zone.sum() > 400
    beyond_forms = (shadow > 0.5) & (forms < 0.5)
    assert beyond_forms[zone].mean() < 0.01, beyond_forms[zone].mean()


def _folds_painted(monkeypatch, paint) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    """The astronaut with a line painted along each smile fold (``paint(portrait, spread)``), through
    the classic stages (photoreal) with the fold tint taken off and without: their CIELAB atlases,
    the painted texels in the folds' band, the band's texels near them, and the feature lines."""
    import cv2
    from avatartex.engines.classic import repaint
    from avatartex.face import MOUTH_LEFT, MOUTH_RIGHT, NOSE_LOWER
    from avatartex.imaging import to_lab

    geo, _, _, lines, landmarks = _scene()
    nose = landmarks[list(NOSE_LOWER), :2]
    painted = np.zeros(astronaut().shape[:2], np.float32)
    iod = np.linalg.norm(landmarks[33, :2] - landmarks[263, :2])
    for wing, corner in ((nose[0], landmarks[MOUTH_RIGHT, :2]), (nose[-1], landmarks[MOUTH_LEFT, :2])):
        start, end = wing + 0.2 * (corner - wing), corner + 0.2 * (corner - wing)
        cv2.line(painted, tuple(np.round(start).astype(int)), tuple(np.round(end).astype(int)), 1.0, 2)
    spread = cv2.GaussianBlur(painted, (0, 0), 0.02 * iod)[..., None] / painted.max()
    portrait = paint(astronaut().copy(), spread)

    def run(taken_off: bool) -> np.ndarray:
        if not taken_off:
            monkeypatch.setattr(repaint, "fold_tint_taken_off", lambda image, ctx: image)
        texture, coords = frontal_texture(geo, portrait)
        ctx = make_ctx(geo, "photoreal", portrait, coords, seed=1)
        ctx.feature_lines = lines
        for stage in (ClassicInpaint(), ClassicLatent(), ClassicRepaint()):
            texture = stage.run(texture, ctx)
        return to_lab(np.asarray(texture.color, np.float32))

    def marked(mark: np.ndarray) -> np.ndarray:
        seen, _ = frontal_texture(geo, np.repeat(cv2.GaussianBlur(mark, (0, 0), 1.0)[..., None], 3, -1))
        return (np.asarray(seen.color)[..., 0] > 0.3) & (np.asarray(seen.confidence) > 0.5) & band

    band = repaint.smile_folds(lines, geo.mask.shape, _unit()) > 0.5
    on_fold = marked(painted)
    near = cv2.dilate(on_fold.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool) & band & ~on_fold
    assert on_fold.sum() > 100 and near.sum() > 200
    lab, before = run(True), run(False)
    return lab, before, on_fold, near, lines


def test_the_photos_smile_folds_keep_their_darkness_but_not_their_tint(monkeypatch) -> None:
    """The skin in a smile fold's shadow is redder and yellower than lit skin; with the shadow lifted
    the tint stayed, and on the scanned head with the astronaut her right fold rendered as an
    orange-brown scar. The astronaut with folds painted darker and warmer (photoreal): in the atlas the
    painted folds are no more saturated than the skin around them (they were, without the step), and
    still darker; the lips, which the folds' band reaches past the mouth corners, keep their colour."""
    darker_warmer = np.array([0.15, 0.3, 0.45], np.float32)
    lab, before, on_fold, near, lines = _folds_painted(
        monkeypatch, lambda p, spread: p * (1.0 - spread * darker_warmer)
    )

    def excess(image: np.ndarray, where: np.ndarray) -> float:
        chroma = np.hypot(image[..., 1], image[..., 2])
        return float(np.median(chroma[where]) - np.median(chroma[near]))

    assert excess(before, on_fold) > 3.0 and excess(lab, on_fold) < 1.5  # 4.8 when the step was new
    assert np.median(lab[..., 0][on_fold]) < np.median(lab[..., 0][near]) - 2.0  # the fold still darker
    lips = features.fill_polygon(on_fold.shape, lines["lips_outer"]) > 0.5  # the lips keep their colour
    lip_chroma = [float(np.median(np.hypot(x[..., 1], x[..., 2])[lips])) for x in (lab, before)]
    assert lips.sum() > 100 and abs(lip_chroma[0] - lip_chroma[1]) < 0.5, lip_chroma


def test_a_mark_of_another_hue_in_a_smile_folds_band_keeps_its_colour(monkeypatch) -> None:
    """Paint along the folds (a blue line, a tattoo's ink) is not a fold's tint: taken off as one, a
    blue disc painted by the astronaut's mouth came out purple. Its hue and chroma stay as they are
    without the step."""
    blue = np.array([0.15, 0.25, 0.8], np.float32)
    lab, before, on_fold, near, _ = _folds_painted(
        monkeypatch, lambda p, spread: p * (1.0 - spread) + spread * blue
    )
    assert np.median(before[..., 2][on_fold]) < -25.0  # blue (b* well below the skin's)
    for channel in (1, 2):
        assert abs(np.median(lab[..., channel][on_fold]) - np.median(before[..., channel][on_fold])) < 1.0


def test_comic_prints_no_screen_over_a_dark_skin() -> None:
    """Comic printed its halftone screen over the darkest colours (under 0.3 luminance) besides the
    head's shadows: with every palette colour the skin's, the darkest colour is the skin itself on a
    dark-skinned face, and the whole head came out dotted (the astronaut's skin darkened to L* x
    0.38 on the demo head). Lit skin away from the features and the folds is one flat colour,
    whatever the skin's lightness."""
    from avatartex.engines.classic.repaint import head_forms
    from avatartex.imaging import from_lab, to_lab

    geo, texture, ctx = _completed("comic")
    _, _, _, lines, _ = _scene()
    lab = to_lab(np.clip(texture.color, 0.0, 1.0))
    lab[..., 0] *= 0.38
    lab[..., 1:] *= 1.3
    dark = np.clip(from_lab(lab), 0.0, 1.0).astype(np.float32)
    styled = ClassicRepaint().run(AtlasTexture(dark, texture.confidence), ctx).color
    forms = head_forms(geo)
    level = forms["cavity"] * forms["head"] * 12.0 + np.clip(forms["down"] - 0.25, 0, 1) * 1.5
    away = features.distance_to_lines(level.shape, list(lines.values())) > 0.15 * _unit()
    lit = geo.mask & away & (forms["front"] > 0.5) & (level < 0.45 - 0.2)
    lum = styled[..., 0] * 0.2126 + styled[..., 1] * 0.7152 + styled[..., 2] * 0.0722
    assert lit.sum() > 2000, int(lit.sum())
    assert float(np.median(lum[lit])) < 0.25  # a dark skin indeed
    dotted = np.abs(lum - np.median(lum[lit])) > 0.03
    assert float(dotted[lit].mean()) < 0.02, float(dotted[lit].mean())
