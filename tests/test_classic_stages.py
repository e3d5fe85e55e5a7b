"""The classic engine's three stages: measured behaviour on synthetic and real-face atlases."""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import pytest
from avatartex import atlas_filters as filters
from avatartex.engines.base import AtlasTexture, StageContext
from avatartex.engines.classic.inpaint import (
    FILL_ANISOTROPY,
    ClassicInpaint,
    _anisotropy_blend,
    grain_band_share,
)
from avatartex.engines.classic.latent import (
    CHANNEL_EXPONENTS,
    WHITENING_CORRELATION,
    CandidateColours,
    ClassicLatent,
    _fit_candidates,
    _skin_mask,
    channel_exponents,
    unwhitened,
    whitened_skin,
)
from avatartex.engines.classic.repaint import ClassicRepaint
from avatartex.imaging import LUMA, luminance
from classic_fixtures import astronaut, frontal_texture, head_atlas, make_ctx, sphere_atlas

STYLES = ("photoreal", "painterly", "toon", "comic", "anime")


def with_classic(ctx: StageContext, **settings: object) -> StageContext:
    """``ctx`` with some classic settings of its style overridden."""
    style = dataclasses.replace(ctx.style, classic={**ctx.style.classic, **settings})
    return dataclasses.replace(ctx, style=style)


def smoothstep(x: np.ndarray) -> np.ndarray:
    t = np.clip(x, 0, 1)
    return (t * t * (3 - 2 * t)).astype(np.float32)


# ---------------------------------------------------------------- stage 1: inpaint


def test_inpaint_keeps_confident_texels_bit_identical() -> None:
    geo = sphere_atlas(128)
    rng = np.random.default_rng(1)
    color = rng.random((128, 128, 3), dtype=np.float32)
    conf = np.where(rng.random((128, 128)) < 0.4, 1.0, rng.random((128, 128)) * 0.9).astype(np.float32)
    conf[:, :20] = 0.0
    tex = AtlasTexture(color.copy(), conf.copy())
    out = ClassicInpaint().run(tex, make_ctx(geo))
    full = conf == 1.0
    assert full.sum() > 1000
    assert np.array_equal(out.color[full], color[full])
    assert np.array_equal(out.confidence, conf)
    assert np.array_equal(tex.color, color)  # the input is not modified
    partial = (conf > 0) & (conf < 1) & geo.mask
    assert not np.array_equal(out.color[partial], color[partial])
    assert np.isfinite(out.color).all() and out.color.min() >= 0 and out.color.max() <= 1


def test_inpaint_symmetric_completion_recovers_the_unseen_side() -> None:
    geo = sphere_atlas(256)
    d = geo.normals
    ax, y = np.abs(d[..., 0]), d[..., 1]
    truth = np.stack([0.5 + 0.25 * np.sin(20 * y + 15 * ax + k) for k in range(3)], -1).astype(np.float32)
    conf = smoothstep((d[..., 2] - 0.1) / 0.5) * smoothstep((d[..., 0] - 0.02) / 0.1) * geo.mask
    tex = AtlasTexture(np.where(conf[..., None] > 0, truth, 0).astype(np.float32), conf)
    unseen_front = geo.mask & (d[..., 0] < -0.2) & (d[..., 2] > 0.4)
    errors = {}
    for symmetry in (1.0, 0.0):
        ctx = with_classic(make_ctx(geo), symmetry=symmetry, grain=0.0)
        out = ClassicInpaint().run(tex, ctx)
        errors[symmetry] = float(np.abs(out.color - truth)[unseen_front].mean())
    assert errors[1.0] < 0.03
    assert errors[1.0] < 0.25 * errors[0.0]


def test_a_small_unseen_patch_inside_the_seen_face_is_filled_from_around_it() -> None:
    """A sliver the camera does not see inside what it does (the crease behind a nose's wing) takes
    the colour around it, not its mirror image's: left of the face is one colour, right another, the
    sliver on the left must come out left-coloured. A large unseen side still takes its mirror."""
    geo = sphere_atlas(512)
    d = geo.normals
    left, right = np.float32([0.7, 0.5, 0.4]), np.float32([0.4, 0.55, 0.7])
    front = geo.mask & (d[..., 2] > 0.1)
    color = np.where((d[..., 0] < 0)[..., None], left, right).astype(np.float32)
    sliver = front & (np.abs(d[..., 0] + 0.4) < 0.03) & (np.abs(d[..., 1]) < 0.08)
    conf = (front & ~sliver).astype(np.float32)
    assert 20 < sliver.sum() < (filters.SMALL_HOLE_IOD * geo.layout.face_texels_per_iod) ** 2
    ctx = with_classic(make_ctx(geo), symmetry=1.0, grain=0.0)
    out = ClassicInpaint().run(AtlasTexture(color * conf[..., None], conf), ctx).color
    assert np.abs(out[sliver] - left).max(axis=1).mean() < 0.03
    assert filters.small_holes(conf, geo)[sliver].all()
    assert not filters.small_holes(conf, geo)[geo.mask & (d[..., 2] < -0.5)].any()  # the back: large


def test_the_fill_is_not_drawn_from_the_photos_doubtful_rim() -> None:
    """Skin seen fully, then a rim the photo barely backs (a fringe's shadow at confidence 0.05-0.25,
    dark), then nothing: the fill beyond the rim takes the well-seen skin's colour, not the rim's
    (as sources, the rim's texels defined the fill next to them: a line along the hairline)."""
    geo = sphere_atlas(256)
    up = geo.normals[..., 1]
    skin, shadow = np.float32([0.8, 0.62, 0.55]), np.float32([0.35, 0.25, 0.2])
    seen = geo.mask & (up < 0.3)
    rim = geo.mask & (up >= 0.3) & (up < 0.4)
    conf = np.where(seen, 1.0, np.where(rim, 0.05 + 0.2 * (0.4 - up) / 0.1, 0.0)).astype(np.float32)
    color = np.where(seen[..., None], skin, np.where(rim[..., None], shadow, 0.0)).astype(np.float32)
    ctx = with_classic(make_ctx(geo), symmetry=0.0, grain=0.0)
    out = ClassicInpaint().run(AtlasTexture(color, conf), ctx).color
    beyond = geo.mask & (up > 0.4) & (up < 0.5)  # the rim's colour reached 0.08 off here
    assert np.abs(out[beyond] - skin).max(axis=1).mean() < 0.02
    np.testing.assert_allclose(
        filters.fill_weight(np.float32([0.0, 0.5, 0.7, 0.9, 1.0])), [0, 0, 0.5, 1, 1], atol=1e-6
    )


def test_inpaint_fill_wraps_around_the_back_seam() -> None:
    geo = sphere_atlas(256)
    s, rows = 256, geo.band_rows
    color = np.zeros((s, s, 3), np.float32)
    conf = np.zeros((s, s), np.float32)
    color[:rows, :8] = (1.0, 0.0, 0.0)
    conf[:rows, :8] = 1.0
    color[:rows, s // 2 - 4 : s // 2 + 4] = (0.0, 0.0, 1.0)
    conf[:rows, s // 2 - 4 : s // 2 + 4] = 1.0
    ctx = with_classic(make_ctx(geo), symmetry=0.0, grain=0.0)  # no mirror: only the wrap can help
    out = ClassicInpaint().run(AtlasTexture(color, conf), ctx).color
    mid = slice(rows // 4, 3 * rows // 4)
    near_seam = out[mid, s - 12].mean(axis=0)  # 12 columns from the red strip across the seam
    assert near_seam[0] > near_seam[2] + 0.3
    # Symmetric about the red strip: column S-12 (12 left of column 0) looks like column 19 (12 right of 7).
    assert np.abs(out[mid, s - 12] - out[mid, 19]).mean() < 0.03


def test_inpaint_grain_matches_the_seen_skin() -> None:
    geo = sphere_atlas(1024)  # 181 texels per eye distance: every band is skin-fine
    assert np.all(grain_band_share(geo) == 1.0)
    rng = np.random.default_rng(5)
    noise = filters.gaussian(rng.standard_normal((1024, 1024)).astype(np.float32), 0.8, geo.band_rows)
    skin = (np.array([0.7, 0.5, 0.42], np.float32) * (1 + 0.25 * noise)[..., None]).astype(np.float32)
    conf = smoothstep((geo.normals[..., 2] - 0.1) / 0.4) * geo.mask
    tex = AtlasTexture(np.where(conf[..., None] > 0, skin, 0).astype(np.float32), conf)

    def fine_std(image: np.ndarray, region: np.ndarray) -> float:
        lum = luminance(image)
        high = lum - filters.gaussian(lum, 2.0, geo.band_rows)
        return filters.robust_std(high[region])

    seen = (conf > 0.99) & geo.mask
    filled = (conf == 0) & geo.mask & (geo.normals[..., 2] < -0.3)
    target = fine_std(skin, seen)
    ctx = make_ctx(geo, seed=3)
    out = ClassicInpaint().run(tex, ctx).color
    ratio = fine_std(out, filled) / target
    assert 0.6 < ratio < 1.6
    flat = ClassicInpaint().run(tex, with_classic(ctx, grain=0.0)).color
    assert fine_std(flat, filled) / target < 0.15
    # Seeded: same seed, same grain; another seed, other grain.
    assert np.array_equal(ClassicInpaint().run(tex, ctx).color, out)
    other = ClassicInpaint().run(tex, make_ctx(geo, seed=4)).color
    assert np.abs(other - out)[filled].mean() > 0.01


def test_grain_is_skin_fine_at_any_atlas_size(monkeypatch) -> None:
    """On an atlas half as fine (512: 90 texels per eye distance, what a 512 texture gets), seen skin
    mottled at 2-4 texels (0.022-0.044 eye distances: wrinkles, blotches) gives no grain at that
    scale, only the finer grain; with the scale's cap lifted, it would mottle the whole head."""
    from avatartex.engines.classic import inpaint

    geo = sphere_atlas(512)
    share = grain_band_share(geo)
    assert share[0] == share[1] == 1.0 and share[2] < 0.05
    s, rng = geo.size, np.random.default_rng(5)
    fine = filters.gaussian(rng.standard_normal((s, s)).astype(np.float32), 0.8, geo.band_rows)
    coarse = filters.gaussian(rng.standard_normal((s, s)).astype(np.float32), 2.5, geo.band_rows)
    pattern = 0.03 * fine / filters.robust_std(fine[geo.mask]) + 0.08 * coarse / filters.robust_std(
        coarse[geo.mask]
    )
    skin = (np.array([0.7, 0.5, 0.42], np.float32) * (1 + pattern)[..., None]).astype(np.float32)
    conf = smoothstep((geo.normals[..., 2] - 0.1) / 0.4) * geo.mask
    tex = AtlasTexture(np.where(conf[..., None] > 0, skin, 0).astype(np.float32), conf)
    seen = (conf > 0.99) & geo.mask
    filled = (conf == 0) & geo.mask & (geo.normals[..., 2] < -0.3)

    def ratios() -> list[float]:
        """Per band (_BANDS), the filled back's robust std over the seen skin's."""
        out = ClassicInpaint().run(tex, make_ctx(geo, seed=3)).color
        pairs = zip(
            inpaint._band_pass(luminance(out), geo.band_rows),
            inpaint._band_pass(luminance(skin), geo.band_rows),
            strict=True,
        )
        return [filters.robust_std(o[filled]) / filters.robust_std(b[seen]) for o, b in pairs]

    capped = ratios()
    assert 0.6 < capped[0] < 1.8 and capped[2] < 0.35
    monkeypatch.setattr(inpaint, "GRAIN_FINEST_IOD", 1.0)
    assert ratios()[2] > 0.5


# ---------------------------------------------------------------- stage 2: latent (de-lighting)


def _lit_texture(
    geo, light: np.ndarray | None, powers: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> tuple[AtlasTexture, np.ndarray]:
    """Flat albedo with fine texture, lit by ambient + one directional light (or flat light); each
    channel follows the shading to its own power (``powers``; a Lambertian render's are 1)."""
    rng = np.random.default_rng(11)
    pattern = 1 + 0.08 * filters.gaussian(
        rng.standard_normal(geo.mask.shape).astype(np.float32), 0.7, geo.band_rows
    )
    albedo = (np.array([0.75, 0.55, 0.45], np.float32) ** filters.GAMMA) * pattern[..., None]
    if light is None:
        shading = np.ones(geo.mask.shape, np.float32)
    else:
        shading = 0.25 + 0.75 * np.clip(geo.normals @ (light / np.linalg.norm(light)), 0, None)
    color = (albedo * shading[..., None] ** np.float32(powers)) ** (1 / filters.GAMMA)
    conf = smoothstep((geo.normals[..., 2] - 0.15) / 0.55) * geo.mask
    tex = AtlasTexture(np.where(conf[..., None] > 0, color, 0).astype(np.float32), conf)
    return tex, albedo


def _delit(
    geo,
    light: np.ndarray,
    normals: np.ndarray,
    subject: str = "",
    pattern: np.ndarray | None = None,
    photo_face: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, StageContext]:
    """(the log-luminance the latent stage leaves, the fully seen texels, its context) for an
    albedo (even, or times ``pattern``) lit through ``normals`` and de-lit on the atlas's own
    (smooth) normals with a trusted registration; ``subject`` as the request's; ``photo_face``: the
    photographed face's normals and cover the face detector gave (``StageContext.photo_face``)."""
    shading = 0.25 + 0.75 * np.clip(normals @ light, 0, None)
    albedo = np.array([0.75, 0.55, 0.45], np.float32) ** filters.GAMMA
    if pattern is not None:
        albedo = albedo * pattern[..., None]
    color = (albedo * shading[..., None]) ** (1 / filters.GAMMA)
    conf = (smoothstep((geo.normals[..., 2] - 0.15) / 0.55) * geo.mask).astype(np.float32)
    ctx = dataclasses.replace(make_ctx(geo), alignment_error_iod=0.01, subject=subject)
    if photo_face is not None:
        ctx.photo_face = lambda: photo_face
    out = ClassicLatent().run(
        AtlasTexture(np.where(conf[..., None] > 0, color, 0).astype(np.float32), conf), ctx
    )
    lum = np.log(np.maximum((out.color**filters.GAMMA) @ LUMA, 1e-4))
    return lum, geo.mask & (conf > 0.9), ctx


def _light_left(geo, light: np.ndarray, normals: np.ndarray, monkeypatch=None) -> tuple[float, float]:
    """(the detail band's share the mesh's creases explain, the large-scale log-luminance spread
    left after the latent stage) for an even albedo lit through ``normals`` (``_delit``);
    ``monkeypatch`` given: the mesh's creases taken for the photo's whatever they explain (the detail
    light always used)."""
    from avatartex.engines.classic import latent

    if monkeypatch is not None:
        monkeypatch.setattr(latent, "SHAPE_AGREEMENT", (-2.0, -1.0))
    lum, seen, ctx = _delit(geo, light, normals)
    large, _ = filters.normalized_gaussian(lum[..., None], seen.astype(np.float32), 8, geo.band_rows)
    return ctx.lighting["detail_explained"], float(np.std(large[..., 0][seen]))


def test_latent_takes_the_light_off_a_head_that_is_not_the_photographed_face(monkeypatch) -> None:
    """A sculpture or another person's scan has other creases than the photographed face: the detail
    band's light (fitted on the mesh's creases) is then flat, and dividing it out left the photo's
    large-scale light in (bench/delight_cross.py: one cheek 13.5 L* darker than the other)."""
    geo = sphere_atlas(256)
    light = np.array([0.7, 0.3, 0.65]) / np.linalg.norm([0.7, 0.3, 0.65])
    # The photographed face: the sphere with creases ~1/6 of its radius apart the mesh has not.
    x, y = 2 * np.pi * 6 * geo.positions[..., 0], 2 * np.pi * 5 * geo.positions[..., 1]
    slope = 0.1 * np.pi * np.stack([6 * np.cos(x) * np.cos(y), -5 * np.sin(x) * np.sin(y), 0 * x], axis=-1)
    photographed = geo.normals - slope
    photographed /= np.linalg.norm(photographed, axis=-1, keepdims=True)
    explained_same, left_same = _light_left(geo, light, geo.normals)
    explained, left = _light_left(geo, light, photographed)
    assert explained_same > 0.9 and explained < 0.15, (explained_same, explained)
    assert left < 1.15 * left_same, (left, left_same)
    _, left_trusting = _light_left(geo, light, photographed, monkeypatch)
    assert left_trusting > 1.3 * left_same, (left_trusting, left_same)  # what the gate prevents


def _in_relief_band(log_image: np.ndarray, seen: np.ndarray, geo) -> np.ndarray:
    """(S, S) ``log_image`` between the relief band's Gaussians (``RELIEF_BAND_IOD``), on ``seen``."""
    from avatartex.engines.classic.latent import RELIEF_BAND_IOD

    fine, coarse = (
        filters.normalized_gaussian(
            log_image[..., None], seen.astype(np.float32), b * geo.layout.face_texels_per_iod, geo.band_rows
        )[0]
        for b in RELIEF_BAND_IOD
    )
    return (fine - coarse)[..., 0]


def _another_face():
    """(a sphere's atlas, the normals of the photographed face: the sphere with a relief half its
    radius, an eye distance, across, which the sphere lacks; the photo's light)."""
    geo = sphere_atlas(256)
    x, y = 2 * np.pi * 2 * geo.positions[..., 0], 2 * np.pi * 2 * geo.positions[..., 1]
    slope = 0.3 * np.stack([np.cos(x) * np.cos(y), -np.sin(x) * np.sin(y), 0 * x], axis=-1)
    photographed = geo.normals - slope
    photographed /= np.linalg.norm(photographed, axis=-1, keepdims=True)
    return geo, photographed, np.array([0.7, 0.3, 0.65]) / np.linalg.norm([0.7, 0.3, 0.65])


def test_the_photographed_faces_relief_is_taken_off_another_head() -> None:
    """The photographed face's nose, sockets and cheekbones shade the photo where the mesh's own
    shape casts other shading: dividing the mesh's out leaves a ghost of that face's relief in the
    skin (bench/delight_cross.py). Where the mesh's creases explain little of the photo's, or the
    request says the photo shows someone else, it is taken off; where the request says the photo
    shows the mesh's own person, the skin's own tones at that scale are kept."""
    geo, photographed, light = _another_face()
    x, y = 2 * np.pi * 2 * geo.positions[..., 0], 2 * np.pi * 2 * geo.positions[..., 1]
    # What the de-lighting leaves on the photographed face's own mesh with an even skin (its
    # terminator), against which the rest is measured.
    lum, seen, ctx = _delit(geo, light, geo.normals, "same")
    reference, explained_own = _in_relief_band(lum, seen, geo), ctx.lighting["detail_explained"]

    def left(normals, subject, pattern=None) -> tuple[float, float]:
        lum, _, ctx = _delit(geo, light, normals, subject, pattern)
        band = _in_relief_band(lum, seen, geo)
        return float(np.std((band - reference)[seen])), ctx.lighting.get("detail_explained", np.nan)

    (ghost, explained), (auto, _), (other, _) = (left(photographed, s) for s in ("same", "", "other"))
    assert explained < 0.15 < 0.45 < explained_own and ghost > 0.05, (explained, explained_own, ghost)
    assert auto < 0.5 * ghost and other < 0.5 * ghost, (auto, other, ghost)
    # The skin's own blotches at that scale on the photographed face's own mesh: kept when the
    # request says so (taken for relief when it says the photo is of someone else).
    blotches = np.exp(0.1 * np.sin(x / 1.3 + 1.0) * np.cos(y / 1.1)).astype(np.float32)
    truth = float(np.std(_in_relief_band(np.log(blotches), seen, geo)[seen]))
    (own, _), (taken, _) = left(geo.normals, "same", blotches), left(geo.normals, "other", blotches)
    assert own > 0.8 * truth > 0.02 and taken < 0.5 * truth, (own, taken, truth)


def test_a_patch_filled_from_its_mirror_takes_off_the_relief_the_mirror_had() -> None:
    """A patch inside the seen skin that the photo lost (burnt out to white and taken off, say) and
    that is filled from its mirror image takes the mirror's colour, and with it the photographed
    face's relief there: on a head that is not the photographed face that relief is taken off the
    seen skin, and so it must be off the fill as far as the fill made it. Filled from the skin around
    instead, the patch came out lighter or darker than the skin around it (the astronaut's photo 0.4
    stop brighter on the scanned head: her cheek 4.6 L* paler than the same texture of her photo as
    it is, 0.7 now)."""
    geo, photographed, light = _another_face()
    shading = 0.25 + 0.75 * np.clip(photographed @ light, 0, None)
    albedo = np.array([0.75, 0.55, 0.45], np.float32) ** filters.GAMMA
    color = ((albedo * shading[..., None]) ** (1 / filters.GAMMA)).astype(np.float32)
    conf = (smoothstep((geo.normals[..., 2] - 0.15) / 0.55) * geo.mask).astype(np.float32)
    ctx = dataclasses.replace(make_ctx(geo), alignment_error_iod=0.01, subject="other")
    radius = 0.35 * geo.layout.face_texels_per_iod  # over SMALL_HOLE_IOD: filled from the mirror
    seen = geo.mask & (conf > 0.95)
    errors = []
    for centre in ((0.3, 0.15), (0.35, -0.2), (0.15, -0.3), (0.4, 0.1)):
        direction = np.array([centre[0], centre[1], 0.0])
        direction[2] = np.sqrt(1.0 - direction @ direction)
        r, c = np.unravel_index(np.argmax(np.where(geo.mask, geo.normals @ direction, -2.0)), conf.shape)
        rows, cols = np.mgrid[0 : conf.shape[0], 0 : conf.shape[1]]
        patch = geo.mask & ((rows - r) ** 2 + (cols - c) ** 2 < radius**2)
        mirror = np.zeros(conf.size, bool)
        mirror[geo.mirror_index().reshape(-1)[np.flatnonzero(patch)]] = True
        assert seen[mirror.reshape(conf.shape)].mean() > 0.95  # the mirror is seen
        lost = AtlasTexture(np.where(patch[..., None], 1.0, color), np.where(patch, 0.0, conf))
        out = ClassicLatent().run(ClassicInpaint().run(lost, ctx), ctx)
        lum = np.log(np.maximum((out.color**filters.GAMMA) @ LUMA, 1e-4))
        near = seen & ~patch & ((rows - r) ** 2 + (cols - c) ** 2 < (2 * radius) ** 2)
        errors.append(abs(float(np.median(lum[patch]) - np.median(lum[near]))))
    # The mirror's relief taken off with the skin around's instead: 0.010-0.038 apart here.
    assert max(errors) < 0.008, errors


def test_another_face_is_de_lit_on_its_own_normals_where_the_detector_gives_them() -> None:
    """A photo's shading is the photographed face's: where the mesh is another head, the light is
    fitted and divided out on that face's own normals (``photoface``, from the face detector's
    depths) as far as they cover a texel. On the mesh's normals a narrower face's sides, turned away
    from a side light, stayed darker in the skin (bench/delight_cross.py, cross cases: the cheeks
    1.37 L* apart, 0.42 on the photographed face's normals). A photo of the mesh's own person keeps
    the mesh's normals, which are exact there."""
    geo = sphere_atlas(256)
    photographed = geo.normals * np.array([1.8, 1.0, 1.0], np.float32)  # its sides turn away faster
    photographed /= np.maximum(np.linalg.norm(photographed, axis=-1, keepdims=True), 1e-6)
    light = np.array([0.75, 0.25, 0.6]) / np.linalg.norm([0.75, 0.25, 0.6])
    cover = geo.mask.astype(np.float32)
    # What the de-lighting leaves of this light on the photographed face's own mesh (its terminator,
    # its clipped extremes), against which the rest is measured.
    reference, seen, _ = _delit(geo, light, geo.normals, "same")

    def light_left(subject: str, photo_face=None) -> tuple[float, np.ndarray]:
        lum, _, _ = _delit(geo, light, photographed, subject, photo_face=photo_face)
        return float(np.std((lum - reference)[seen])), lum

    on_mesh, _ = light_left("other")
    on_face, _ = light_left("other", (photographed, cover))
    assert on_mesh > 0.01 and on_face < 0.25 * on_mesh, (on_face, on_mesh)
    # The same request, told the photo shows the mesh's own person: the detector's normals unused.
    _, same = light_left("same")
    _, same_given = light_left("same", (photographed, cover))
    assert np.array_equal(same, same_given)
    # A photo of the mesh's own shape that the request calls another face's (as Auto does a made-up
    # face's), with the detector reading a shape off it: the mesh's own shape explains the photo
    # better, and the detector's is not taken.
    own, _, own_ctx = _delit(geo, light, geo.normals, "other")
    misread, _, misread_ctx = _delit(geo, light, geo.normals, "other", photo_face=(photographed, cover))
    assert misread_ctx.lighting["photo_face"] == 0.0 and np.array_equal(own, misread)


def test_an_unsure_choice_of_whom_the_photo_shows_is_warned_with_the_setting(monkeypatch) -> None:
    """Left to the photo, a relief taken off in part (the mesh's creases match the photo's in part)
    is warned about, naming the settings that decide it; not where the request says whom the photo
    shows, nor where the photo's creases clearly are another face's."""
    from avatartex.engines.classic import latent

    geo, photographed, light = _another_face()

    def relief_warnings(subject: str) -> tuple[list[str], dict]:
        _, _, ctx = _delit(geo, light, photographed, subject)
        return [w for w in ctx.warnings if "relief" in w], ctx.lighting

    sure, lighting = relief_warnings("")
    explained = lighting["detail_explained"]
    assert not sure and lighting["relief"] > 0.9, (sure, lighting)
    assert lighting["relief_strength"] >= latent.RELIEF_NOTICEABLE, lighting
    # The same photo where the creases' agreement ramp is centred on what they explain: half taken.
    monkeypatch.setattr(latent, "SHAPE_AGREEMENT", (explained - 0.1, explained + 0.1))
    (warning,), lighting = relief_warnings("")
    assert 0.4 < lighting["relief"] < 0.6 and "--subject same" in warning and "This Person" in warning
    assert f"{round(100 * lighting['relief'])}%" in warning, (warning, lighting)
    assert relief_warnings("other")[0] == [] and relief_warnings("same")[0] == []
    # A relief too faint to show is not warned about, however unsure the choice.
    monkeypatch.setattr(latent, "RELIEF_NOTICEABLE", 2 * lighting["relief_strength"])
    assert relief_warnings("")[0] == []


def test_the_delightings_light_fit_runs_on_one_blas_thread(monkeypatch) -> None:
    """The light fit's least squares over tens of thousands of residuals lose more to OpenBLAS's
    hand-overs than a second thread gives (``registration.SMALL_FITS_BLAS_THREADS``)."""
    from avatartex.engines.classic import latent
    from avatartex.registration import SMALL_FITS_BLAS_THREADS
    from threadpoolctl import threadpool_info

    seen = []

    def fit_lights(*args, **kwargs):
        seen.append([p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"])
        return original(*args, **kwargs)

    original = latent.fit_lights
    monkeypatch.setattr(latent, "fit_lights", fit_lights)
    geo, photographed, light = _another_face()
    _delit(geo, light, photographed, "same")
    assert seen and seen[0] and all(n == SMALL_FITS_BLAS_THREADS for n in seen[0]), seen


def test_the_fills_of_colour_and_shading_share_what_the_confidence_decides() -> None:
    """The inpaint's fill of the colour and the de-lighting's of its shading read the same
    confidence: what depends on it alone is worked out once, and the fill is the same as worked out
    afresh; another confidence is worked out anew."""
    geo = sphere_atlas(128)
    rng = np.random.default_rng(3)
    conf = (smoothstep((geo.normals[..., 2] - 0.2) / 0.5) * geo.mask).astype(np.float32)
    colour = rng.random((*conf.shape, 3)).astype(np.float32)
    shading = rng.random(conf.shape).astype(np.float32)

    def fresh(values, confidence):
        geo.cache.pop("fill_plan", None)
        return filters.smooth_fill(values, confidence, geo, 1.0)

    first = fresh(colour, conf)
    plan = geo.cache["fill_plan"]
    shared = filters.smooth_fill(shading, conf, geo, 1.0)
    assert geo.cache["fill_plan"] is plan
    alone = fresh(shading, conf)
    assert all(np.array_equal(a, b) for a, b in zip(shared, alone, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(first, fresh(colour, conf), strict=True))
    # Another confidence (the photo seen less far round): another plan, and its own fill.
    less = np.where(geo.normals[..., 2] > 0.5, conf, 0).astype(np.float32)
    filters.smooth_fill(shading, conf, geo, 1.0)
    plan = geo.cache["fill_plan"]
    other = filters.smooth_fill(shading, less, geo, 1.0)
    assert geo.cache["fill_plan"] is not plan
    assert all(np.array_equal(a, b) for a, b in zip(other, fresh(shading, less), strict=True))
    assert not np.array_equal(other[0], alone[0])


@pytest.mark.parametrize("light", [(0.6, 0.35, 0.7), (-0.7, 0.2, 0.6), (0.1, 0.9, 0.4)])
def test_a_hidden_strip_is_delit_by_the_shading_its_fill_carried(light) -> None:
    """Texels that are long strips on the surface (a nose's or a brow's side wall), hidden from the
    photo inside the seen face, are filled, blurred along the strip, and de-lit by the shading the
    same fill carried: they come out at the albedo as the seen texels around them do. Their shading
    filled without the blur had left them pale or dark along the wall (a tenth of them off by
    0.16-0.22 in log luminance here, 0.26-0.43 at 512)."""
    geo = head_atlas(256)
    tex, albedo = _lit_texture(geo, np.array(light))
    strips = np.zeros(geo.mask.shape, bool)
    where, blend = _anisotropy_blend(geo, FILL_ANISOTROPY)
    strips[where] = blend > 0.5
    hidden = strips & (tex.confidence > 0.5)
    assert hidden.sum() > 200
    conf = np.where(hidden, 0, tex.confidence).astype(np.float32)
    ctx = make_ctx(geo)
    out = ClassicLatent().run(ClassicInpaint().run(AtlasTexture(tex.color, conf), ctx), ctx)
    error = np.log(np.maximum((out.color**filters.GAMMA) @ LUMA, 1e-4) / (albedo @ LUMA))
    level = np.median(error[geo.mask & (conf > 0.9)])
    assert np.quantile(np.abs(error[hidden] - level), 0.9) < 0.11


def _shading_error(color: np.ndarray, albedo: np.ndarray, region: np.ndarray) -> float:
    """Spread of log(luminance / albedo luminance): 0 when the only thing left is the albedo."""
    ratio = (color[region] ** filters.GAMMA) @ LUMA / (albedo[region] @ LUMA)
    return float(np.std(np.log(np.maximum(ratio, 1e-4))))


@pytest.mark.parametrize("mesh", ["sphere", "head"])
def test_latent_removes_directional_shading(mesh: str) -> None:
    geo = sphere_atlas(256) if mesh == "sphere" else head_atlas(256)
    tex, albedo = _lit_texture(geo, np.array([0.6, 0.35, 0.7]))
    ctx = make_ctx(geo)
    filled = ClassicInpaint().run(tex, ctx)
    out = ClassicLatent().run(filled, ctx)
    region = geo.mask & (tex.confidence > 0.5)
    before = _shading_error(filled.color, albedo, region)
    after = _shading_error(out.color, albedo, region)
    assert before > 0.15
    assert after < before / 5, (before, after)
    # Mean brightness of the seen texels is kept (within the clamp of what the light removed).
    lum_in = luminance(filled.color)[region].mean()
    assert abs(luminance(out.color)[region].mean() - lum_in) < 0.1 * lum_in


def test_the_channels_powers_of_the_shading_are_read_from_the_skin() -> None:
    """The slopes of each channel's log against the log shading, over those of the luminance's, read
    through noisy albedo; none read from an even light; bounded."""
    rng = np.random.default_rng(5)
    log_shading = rng.normal(0.0, 0.15, 20_000)
    albedo = 0.4 * np.exp(rng.normal(0.0, 0.1, (20_000, 3)))
    weights = rng.random(20_000)
    # Powers whose luminance-weighted mean is 1, all steepened by a tone curve (x 1.3): the channels'
    # powers relative to the luminance's are the first.
    powers = np.array([0.7, 0.0, 1.6])
    powers[1] = (1.0 - LUMA[0] * powers[0] - LUMA[2] * powers[2]) / LUMA[1]
    linear = albedo * np.exp(log_shading[:, None] * powers * 1.3)
    assert np.allclose(channel_exponents(linear, log_shading, weights), powers, atol=0.03)
    even = log_shading * 0.05
    assert np.array_equal(
        channel_exponents(albedo * np.exp(even[:, None] * 3.0), even, weights), np.ones(3, np.float32)
    )
    steep = albedo * np.exp(log_shading[:, None] * np.array([0.1, 1.0, 5.0]))
    bounded = channel_exponents(steep, log_shading, weights)
    assert (bounded[0], bounded[2]) == CHANNEL_EXPONENTS


def test_latent_takes_a_photos_coloured_shading_out_of_every_channel() -> None:
    """Skin in shadow redder and lit skin whiter than its albedo, as in real photos: the de-lit skin's
    chroma no longer follows the light (one power for every channel left the lit side pale)."""
    geo = head_atlas(256)
    tex, albedo = _lit_texture(geo, np.array([0.6, 0.35, 0.7]), powers=(0.75, 1.0, 1.5))
    ctx = make_ctx(geo)
    filled = ClassicInpaint().run(tex, ctx)
    region = geo.mask & (tex.confidence > 0.5)

    def chroma_spread(color: np.ndarray) -> float:
        """Spread of log(red / blue) against the albedo's: 0 when the chroma is the albedo's."""
        ratio = np.log(color[region, 0] / color[region, 2]) - np.log(albedo[region, 0] / albedo[region, 2])
        return float(np.std(ratio))

    before = chroma_spread(filled.color)
    after = chroma_spread(ClassicLatent().run(filled, ctx).color)
    assert before > 0.1
    assert after < before / 4, (before, after)


def test_latent_is_near_identity_under_flat_light() -> None:
    geo = sphere_atlas(256)
    tex, _ = _lit_texture(geo, None)
    ctx = make_ctx(geo)
    filled = ClassicInpaint().run(tex, ctx)
    out = ClassicLatent().run(filled, ctx)
    diff = np.abs(out.color - filled.color)[geo.mask]
    assert diff.mean() < 0.004
    assert np.percentile(diff, 99) < 0.02
    assert np.array_equal(out.confidence, filled.confidence)


def test_latent_leaves_a_cap_the_photo_does_not_reach_at_its_level() -> None:
    """Nothing confident in the caps' part of the atlas (crown and under the chin unseen): they have
    no shading to divide out and keep their level (they once got the darkest shading allowed and
    came out 1.65x brighter)."""
    from avatartex.atlas import CHIN

    geo = head_atlas(256)
    tex, _ = _lit_texture(geo, np.array([0.6, 0.35, 0.7]))
    chin = geo.chart == CHIN
    conf = tex.confidence.copy()
    conf[geo.band_rows :] = 0.0
    ctx = make_ctx(geo)
    filled = ClassicInpaint().run(AtlasTexture(tex.color, conf), ctx)
    out = ClassicLatent().run(filled, ctx)
    assert chin.any()
    ratio = luminance(out.color)[chin].mean() / luminance(filled.color)[chin].mean()
    assert 0.8 < ratio < 1.25, ratio


def test_latent_border_gain_removes_a_dark_ring() -> None:
    geo = sphere_atlas(256)
    conf = smoothstep((geo.normals[..., 2] - 0.1) / 0.6) * geo.mask
    base = np.array([0.7, 0.5, 0.42], np.float32)
    # Grazing texels of the photo up to 40% darker than the skin (rim falloff); inpaint fills the rest.
    darkening = 1 - 0.4 * (1 - conf)
    tex = AtlasTexture(np.where(conf[..., None] > 0, base * darkening[..., None], 0).astype(np.float32), conf)
    ctx = with_classic(make_ctx(geo), delight=0.0, harmonise=0.0, grain=0.0)
    filled = ClassicInpaint().run(tex, ctx)
    out = ClassicLatent().run(filled, ctx).color
    ring = geo.mask & (conf > 0.2) & (conf < 0.8)
    # The ring is a valley between the seen skin and the fill: measure its depth below both sides.
    fill_side = filled.color[geo.mask & (conf == 0) & (geo.normals[..., 2] > -0.1)].mean(axis=0)
    before = np.abs(filled.color[ring] - (base + fill_side) / 2).mean()
    after = np.abs(out[ring] - (base + fill_side) / 2).mean()
    assert after < 0.6 * before, (before, after)
    assert np.array_equal(out[conf == 1], filled.color[conf == 1])


def test_latent_border_gain_reaches_a_ring_darkest_where_the_photo_is_almost_fully_seen() -> None:
    """A photo's face is darkest just inside its border (confidence 0.85-0.97, where its light falls
    off towards the cheeks' and jaw's edges), not half-way to the fill: the ring gain reaches there
    too: measured 0.091 -> 0.070 here, where ``4 conf (1 - conf)`` as its weight took off nothing
    (0.091), and the astronaut's face on the scanned head kept a border 2.7 L* darker than the skin
    on both sides (1.0 L* now)."""
    geo = sphere_atlas(256)
    conf = smoothstep((geo.normals[..., 2] - 0.1) / 0.6) * geo.mask
    base = np.array([0.7, 0.5, 0.42], np.float32)
    darkest = np.exp(-(((conf - 0.92) / 0.05) ** 2))  # the photo's own falloff, just inside the border
    tex = AtlasTexture(
        (base * (1 - 0.25 * darkest)[..., None] * (conf[..., None] > 0)).astype(np.float32), conf
    )
    ctx = with_classic(make_ctx(geo), delight=0.0, harmonise=0.0, grain=0.0)
    filled = ClassicInpaint().run(tex, ctx)
    out = ClassicLatent().run(filled, ctx).color
    ring = geo.mask & (conf > 0.85) & (conf < 0.97)
    before = np.abs(filled.color[ring] - base).mean()
    after = np.abs(out[ring] - base).mean()
    assert after < 0.85 * before, (before, after)
    assert np.array_equal(out[conf == 1], filled.color[conf == 1])


def test_latent_border_gain_reaches_a_ring_whose_confidence_stays_near_one() -> None:
    """A confidence map whose border only just dips below 1 (0.9998: ring weight 0.17) still gets
    its share of the gain: the early exit looks for texels on the ring at all, not for a deep one."""
    geo = sphere_atlas(256)
    seen = geo.mask & (geo.normals[..., 2] > 0.1)
    border = seen & (geo.normals[..., 2] < 0.3)
    conf = np.where(border, 0.9998, seen.astype(np.float32)).astype(np.float32)
    base = np.array([0.7, 0.5, 0.42], np.float32)
    tex = AtlasTexture(
        np.where(seen[..., None], base * np.where(border, 0.6, 1.0)[..., None], 0).astype(np.float32), conf
    )
    ctx = with_classic(make_ctx(geo), delight=0.0, harmonise=0.0, grain=0.0)
    filled = ClassicInpaint().run(tex, ctx)
    out = ClassicLatent().run(filled, ctx).color
    assert luminance(out)[border].mean() > 1.001 * luminance(filled.color)[border].mean()
    assert np.array_equal(out[conf == 1], filled.color[conf == 1])


def test_latent_brings_a_dark_cast_fill_to_the_seen_skins_tone() -> None:
    """A fill darker and greener than the seen skin (drawn from a shadowed, tinted edge) is pulled
    to the seen skin's median colour, in lightness as well as chroma; the seen skin stays."""
    from skimage.color import rgb2lab

    geo = sphere_atlas(256)
    conf = np.where(geo.normals[..., 2] > 0.2, 1.0, 0.0).astype(np.float32) * geo.mask
    skin = np.array([0.78, 0.58, 0.48], np.float32)
    fill = np.array([0.55, 0.45, 0.36], np.float32)
    color = np.where(conf[..., None] > 0, skin, fill).astype(np.float32)
    ctx = with_classic(make_ctx(geo), delight=0.0, border_gain=0.0)
    out = ClassicLatent().run(AtlasTexture(color, conf), ctx).color
    # Far from the seen skin (the blur mixes both sides next to it).
    far = geo.mask & (geo.normals[..., 2] < -0.5)
    reference = rgb2lab(skin[None, None])[0, 0]
    before = np.linalg.norm(rgb2lab(fill[None, None])[0, 0] - reference)
    after = np.linalg.norm(rgb2lab(np.clip(out[far], 0, 1)[None]).mean(axis=1)[0] - reference)
    amount = ctx.style.classic_at("harmonise", 0.5, 1.0)
    assert 0 < amount < 1
    assert after < (1.0 - 0.8 * amount) * before, (before, after, amount)
    assert np.allclose(out[conf == 1], skin, atol=1e-6)


# ---------------------------------------------------------------- stage 3: repaint


def test_repaint_detail_transfer_restores_blurred_portrait_detail() -> None:
    geo = sphere_atlas(128)  # about one portrait pixel per texel: the blur removes real detail
    portrait = astronaut()
    sharp, coords = frontal_texture(geo, portrait)
    blurred = filters.gaussian(sharp.color, 1.2, geo.band_rows)
    ctx = make_ctx(geo, "photoreal", portrait, coords)
    out = ClassicRepaint().run(AtlasTexture(blurred, sharp.confidence), ctx).color
    region = geo.mask & (sharp.confidence > 0.8)
    before = np.abs(blurred - sharp.color)[region].mean()
    after = np.abs(out - sharp.color)[region].mean()
    assert after < 0.7 * before, (before, after)

    def fine_energy(image: np.ndarray) -> float:
        lum = luminance(image)
        return float(np.std((lum - filters.gaussian(lum, 1.5, geo.band_rows))[region]))

    assert fine_energy(blurred) < 0.5 * fine_energy(sharp.color)
    assert 0.7 < fine_energy(out) / fine_energy(sharp.color) < 1.3
    # Unseen texels are not touched by the transfer.
    unseen = geo.mask & (sharp.confidence == 0)
    assert np.abs(out - blurred)[unseen].max() < 1e-6


def _whole_chart_detail(color, conf, ctx, amount):
    """The detail transfer computed over every texel of each whole chart (what it was before it
    was limited to boxes around the backed texels): the reference the boxes must reproduce."""
    import pywt
    from avatartex.imaging import sample_image

    atlas, coords = ctx.atlas, ctx.portrait_coords
    valid = np.isfinite(coords).all(axis=-1) & atlas.mask
    rows = atlas.band_rows
    sampled = sample_image(ctx.portrait, coords, interpolation="cubic")
    weight = (valid * conf).astype(np.float32)
    sigma = max(2.0 * atlas.size / 1024, 1.0)
    sampled = np.where(valid[..., None], sampled, color)
    low = filters.gaussian(np.concatenate([color, sampled], axis=-1), sigma, rows)
    ratio = np.clip((low[..., :3] + 1e-3) / (low[..., 3:] + 1e-3), 0.25, 4.0)
    difference = np.where(valid[..., None], sampled * ratio - color, 0.0).astype(np.float32)
    levels = int(np.clip(round(np.log2(atlas.size / 128)), 2, 4))

    def detail(part, wrap):
        coeffs = pywt.wavedec2(part, "db2", mode="symmetric", level=levels, axes=(0, 1))
        coeffs[0] = np.zeros_like(coeffs[0])
        rec = pywt.waverec2(coeffs, "db2", mode="symmetric", axes=(0, 1))
        return rec[: part.shape[0], : part.shape[1]].astype(np.float32)

    out = filters.per_chart(detail, difference, rows, 4 * 2**levels)
    return color + out * (np.float32(amount) * weight * weight)[..., None]


@pytest.mark.parametrize("patch", [False, True])
def test_detail_transfer_in_boxes_equals_the_whole_chart(patch: bool) -> None:
    """The transfer works in boxes around the backed texels: the result is the whole charts' one,
    whether the boxes reach the charts' edges (a whole frontal half) or not (a patch on the cheek)."""
    from avatartex.engines.classic.repaint import transfer_detail

    geo = sphere_atlas(256)
    portrait = astronaut()
    tex, coords = frontal_texture(geo, portrait)
    conf = tex.confidence
    if patch:
        head = geo.frame.to_head(geo.positions)
        conf = conf * ((np.abs(head[..., 0] - 0.3) < 0.25) & (np.abs(head[..., 1]) < 0.25))
    color = filters.gaussian(tex.color, 1.0, geo.band_rows)
    ctx = make_ctx(geo, "photoreal", portrait, coords)
    out = transfer_detail(color, conf, ctx, 1.0)
    expected = _whole_chart_detail(color, conf, ctx, 1.0)
    assert np.abs(out - color).max() > 0.02  # detail was added
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_detail_goes_back_only_as_far_as_the_texel_is_the_photos() -> None:
    """Where the regions step put a fill under the photo (a smile's teeth taken off and the lips
    filled in: confidence 1, the photo's share 0), the photo's detail is not painted back over the
    fill; elsewhere the transfer is the one without the photo's share."""
    import dataclasses

    from avatartex.engines.classic.repaint import transfer_detail

    geo = sphere_atlas(256)
    portrait = astronaut()
    tex, coords = frontal_texture(geo, portrait)
    conf = tex.confidence
    color = filters.gaussian(tex.color, 1.0, geo.band_rows)
    head = geo.frame.to_head(geo.positions)
    filled = geo.mask & (np.abs(head[..., 0]) < 0.2) & (np.abs(head[..., 1]) < 0.2) & (conf > 0.99)
    share = np.where(filled, 0.0, conf).astype(np.float32)
    ctx = make_ctx(geo, "photoreal", portrait, coords)
    plain = transfer_detail(color, conf, ctx, 1.0)
    out = transfer_detail(color, conf, dataclasses.replace(ctx, photo_share=share), 1.0)
    assert filled.sum() > 500
    assert np.abs(plain - color)[filled].max() > 0.02  # without the share the fill got the photo's detail
    np.testing.assert_array_equal(out[filled], color[filled])
    # Away from the fill (beyond the detail's reach) nothing changes.
    from scipy.ndimage import binary_dilation

    away = geo.mask & ~binary_dilation(filled, iterations=24)
    np.testing.assert_allclose(out[away], plain[away], atol=1e-6)


@lru_cache(maxsize=8)
def _chain(style: str, strength: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    geo = head_atlas(256)
    portrait = astronaut()
    tex, coords = frontal_texture(geo, portrait)
    ctx = make_ctx(geo, style, portrait, coords, seed=1, strength=strength)
    for stage in (ClassicInpaint(), ClassicLatent(), ClassicRepaint()):
        tex = stage.run(tex, ctx)
    return tex.color, geo.mask


def test_styles_are_visibly_different() -> None:
    """Every two styles differ visibly (by 8/255 or more) on a good share of the head: toon and comic
    share their palette and cel shadow and differ in inks and halftone (13 % of the texels; 86-100 %
    for every other pair)."""
    outputs = {name: _chain(name) for name in STYLES}
    mask = outputs["photoreal"][1]
    for i, a in enumerate(STYLES):
        for b in STYLES[i + 1 :]:
            visibly = (np.abs(outputs[a][0] - outputs[b][0]).max(axis=-1) > 8 / 255)[mask].mean()
            assert visibly > 0.08, (a, b, visibly)


def test_toon_has_few_colours() -> None:
    """Flat regions: a handful of colours (palette x cel shadow) cover almost every texel; only
    anti-aliased borders lie between them. (Ink along the features: tests/test_style_looks.py.)"""
    toon, mask = _chain("toon")
    colours, counts = np.unique(toon[mask].round(4), axis=0, return_counts=True)
    top = np.sort(counts)[::-1]
    assert top[:16].sum() >= 0.9 * mask.sum(), top[:16].sum() / mask.sum()
    photoreal_colours = np.unique(_chain("photoreal")[0][mask].round(4), axis=0)
    assert len(photoreal_colours) > 50 * 16


def test_strength_zero_is_photoreal() -> None:
    photoreal, mask = _chain("photoreal")
    for name in ("toon", "comic"):
        zero, _ = _chain(name, 0.0)
        assert np.abs(zero - photoreal)[mask].max() < 1e-5
    half, _ = _chain("toon", 0.5)
    full, _ = _chain("toon")
    d_half = np.abs(half - photoreal)[mask].mean()
    assert 0.2 * np.abs(full - photoreal)[mask].mean() < d_half < np.abs(full - photoreal)[mask].mean()


@pytest.mark.parametrize("style", STYLES)
def test_back_seam_shows_no_edge(style: str) -> None:
    """The step across the atlas's back seam (its last column to its first) is no larger than the
    steps between neighbouring columns near the back, or than those right beside the seam: a form
    running down the back's midline (the scanned head's nape groove, which comic dots) steps there as
    much on either side."""
    color, mask = _chain(style)
    s = color.shape[1]
    rows = head_atlas(256).band_rows
    band = color[:rows]
    valid = mask[:rows, 0] & mask[:rows, -1]
    seam = np.abs(band[valid, 0] - band[valid, -1]).mean()

    def step(c: int) -> float:  # between columns c and c + 1
        return float(np.abs(band[valid, c] - band[valid, c + 1]).mean())

    jumps = [step(c) for c in np.r_[0 : s // 8, s - s // 8 : s - 1]]  # neighbouring pairs near the back
    beside = max(step(0), step(s - 2))
    assert seam <= max(np.percentile(jumps, 95), 1.25 * beside), (
        seam,
        np.percentile(jumps, [50, 95]),
        beside,
    )


def test_grain_where_the_atlas_is_coarse_is_skin_fine_on_the_surface() -> None:
    """Where an atlas texel spans several face texels of surface (the scanned bust's neck and back),
    noise drawn per texel would be blotches a few millimetres wide: the grain is the surface's own,
    so little of it survives a Gaussian average over 0.04 eye distances of surface (white noise of
    the atlas's grid in the grain's coarsest band, measured the same way: 0.3 of its variance)."""
    from avatartex.engines.classic import inpaint
    from scipy.spatial import cKDTree

    geo = head_atlas(1024)
    tex, _ = frontal_texture(geo, astronaut())
    longest, anisotropy = inpaint.texel_footprint(geo)
    texels = np.nan_to_num(longest, nan=0.0) * geo.layout.face_texels_per_iod
    coarse = geo.mask & (texels > 3.0) & (np.nan_to_num(anisotropy, nan=9.0) < 1.8) & (tex.confidence == 0)
    assert coarse.sum() > 10_000
    points = geo.frame.to_head(geo.positions[coarse])
    tree = cKDTree(points)
    picked = np.random.default_rng(0).choice(len(points), 2000, replace=False)
    neighbours = tree.query_ball_point(points[picked], 0.08)

    def coarse_share(grain: np.ndarray) -> float:
        """Variance of ``grain`` averaged over 0.04 eye distances of surface, over its own."""
        averaged = []
        for i, near in zip(picked, neighbours, strict=True):
            weight = np.exp(-0.5 * (np.linalg.norm(points[near] - points[i], axis=1) / 0.04) ** 2)
            averaged.append(float((weight * grain[near]).sum() / weight.sum()))
        return float(np.var(averaged) / np.var(grain))

    grain = inpaint.synthesize_grain(tex.color, tex.confidence, make_ctx(geo, seed=3))[..., 0][coarse]
    assert coarse_share(grain) < 0.1
    # The grain's coarsest band drawn on the atlas's grid instead (as it was): blotches.
    white = np.random.default_rng(3).standard_normal(geo.mask.shape, dtype=np.float32)
    assert coarse_share(inpaint._band_pass(white, geo.band_rows)[-1][coarse]) > 0.15


@pytest.mark.parametrize("mesh", ["sphere", "head"])  # the head's frame is turned: normals change axes
def test_the_latent_stages_surface_delight_is_its_atlas_delight_where_the_photo_is_trusted(mesh: str) -> None:
    """``StageContext.delight_at`` (``latent.SurfaceDelight``) reads the latent stage's fitted light
    for any surface point, such as the UV texels the atlas cannot hold: given the atlas's own
    photographed texels (mesh-space normals, portrait pixels), it gives the factor the stage applied
    where the photo is fully trusted, channel by channel."""
    geo = sphere_atlas(256) if mesh == "sphere" else head_atlas(256)
    portrait = astronaut()
    tex, _ = _lit_texture(geo, np.array([0.6, 0.35, 0.7]), (1.2, 1.0, 0.8))
    coords = frontal_texture(geo, portrait)[1]  # where each texel was read (as_photographed's grid)
    ctx = make_ctx(geo, portrait=portrait, coords=coords)
    ClassicLatent().run(ClassicInpaint().run(tex, ctx), ctx)
    assert ctx.delight_at is not None
    photographed = geo.mask & np.isfinite(coords[..., 0])
    normals = geo.normals[photographed] @ geo.frame.axes  # head frame -> the mesh's axes
    factor = ctx.delight_at(normals, coords[photographed])
    trusted = tex.confidence[photographed] >= 0.999
    assert trusted.sum() > 1000
    np.testing.assert_allclose(factor[trusted], ctx.delight[photographed][trusted], rtol=1e-4, atol=1e-5)
    assert np.ptp(factor[trusted][:, 1]) > 0.05  # the light was not flat: the comparison means something


# ---------------------------------------------------------------- compiled passes


def test_compiled_passes_give_numpys_float32_results_bit_for_bit() -> None:
    """The classic stages' one-pass kernels stand in for numpy formulations (broadcasts over three
    channels, scatters): each must give the very same float32 values, NaN and signed zeros
    included, or the texture would change with a speed-up."""
    from avatartex.engines.classic import inpaint, latent

    rng = np.random.default_rng(5)
    image = (rng.random((37, 41, 3), dtype=np.float32) - 0.3) * 4
    image[3, 4, 1] = np.nan
    field = (rng.random((37, 41), dtype=np.float32) - 0.5) * 3
    mask = rng.random((37, 41)) < 0.6
    weights = rng.random((37, 41), dtype=np.float32)
    scales = np.array([-0.4, 0.45, -1.2], np.float32)

    def same(a: np.ndarray, b: np.ndarray) -> None:
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))

    same(latent._exp_scaled(field, scales), np.exp(field[..., None] * scales))
    same(latent._exp_scaled(field, image), np.exp(field[..., None] * image))

    # relief_band's stack: colour, log shading and 1 on the skin texels, 0 elsewhere
    stack = filters.premultiplied(filters.with_channel(image, field), mask)
    w = mask.astype(np.float32)[..., None]
    same(stack, np.concatenate([image, field[..., None], np.ones_like(w)], axis=-1) * w)
    masked = np.empty_like(image)
    inpaint._times_mask(image, mask, masked)
    same(masked, image * mask[..., None].astype(np.float32))
    blend = rng.random(int(mask.sum()), dtype=np.float32)
    target = rng.random((int(mask.sum()), 3), dtype=np.float32)
    blended, expected = image.copy(), image.copy()
    inpaint._blend_where(blended, mask, blend, target)
    expected[mask] += blend[:, None] * (target - image[mask])
    same(blended, expected)
    values = rng.random(int(mask.sum()), dtype=np.float32)
    tinted = np.empty_like(image)
    inpaint._tinted(values, mask, np.array([1.1, 0.9, 0.7], np.float32), tinted)
    grain = np.zeros((37, 41), np.float32)
    grain[mask] = values
    same(tinted, grain[..., None] * np.array([1.1, 0.9, 0.7], np.float32))

    same(
        filters.premultiplied(image, weights),
        np.concatenate([image * weights[..., None], weights[..., None]], -1),
    )
    # float64 factors multiply in float64 and round once, as numpy's multiply into a float32 out.
    wide = weights.astype(np.float64) * (1 + 1e-7)
    expected = np.empty((37, 41, 4), np.float32)
    np.multiply(image, wide[..., None], out=expected[..., :3])
    expected[..., 3] = wide
    same(filters.premultiplied(image, wide), expected)
    wide_exp = latent._exp_scaled(field.astype(np.float64), scales)
    assert wide_exp.dtype == np.float64
    assert np.array_equal(wide_exp, np.exp(field.astype(np.float64)[..., None] * scales))
    same(filters.with_channel(image, weights), np.concatenate([image, weights[..., None]], axis=-1))
    stack = filters.premultiplied(image, weights)
    stack[1, 2, 3], stack[2, 2, 3], stack[4, 4, 3] = np.nan, -0.0, 1e-9
    normalised = np.empty_like(image)
    filters._normalised_kernel(stack, normalised)
    with np.errstate(invalid="ignore"):
        same(normalised, stack[..., :-1] / np.maximum(stack[..., -1], 1e-6)[..., None])
    points = rng.normal(size=(37, 41, 3))
    points[4, 5] = points[4, 6] = 0.0  # a zero step: its sign must come out as numpy's
    chart = rng.integers(0, 3, (37, 41)).astype(np.uint8)
    for axis in (0, 1):
        total, count = np.zeros_like(points), np.zeros(chart.shape)
        for shift in (-1, 1):
            on_chart = (np.roll(chart, shift, axis=axis) == chart) & (chart > 0)
            total += np.where(on_chart[..., None], (points - np.roll(points, shift, axis=axis)) * shift, 0.0)
            count += on_chart
        expected = np.where((count > 0)[..., None], total / np.maximum(count, 1)[..., None], np.nan)
        assert np.array_equal(
            filters._mean_step(points, chart, axis).view(np.uint64), expected.view(np.uint64)
        )
    overall = np.array([0.2, 0.5, 0.7], np.float32)
    toward = np.empty_like(image)
    filters._toward_kernel(overall, image, weights, toward)
    same(toward, (overall + (image - overall) * weights[..., None]).astype(np.float32))


def test_pale_skin_is_taken_for_lit_skin_a_camera_whitened_only_where_paleness_follows_brightness() -> None:
    """A camera's tone curve flattens each channel towards white as the light rises, so a photo's lit
    skin is paler than its skin in shade, and pale in step with its brightness: that skin is fitted
    and de-lit as skin (``latent.whitened_skin``). A skin's own pale patches are paler too, but not
    in step with the light: on a render (no tone curve) and on a photo of a blotched skin they stay
    out of the light's fit (taken for it, they are darkened to the skin around)."""
    geo = sphere_atlas(256)
    light = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])
    shading = (0.2 + 0.8 * np.clip(geo.normals @ light, 0, None))[..., None]
    albedo = np.array([0.8, 0.5, 0.35], np.float32) ** filters.GAMMA
    x, y = 2 * np.pi * 2 * geo.positions[..., 0], 2 * np.pi * 2 * geo.positions[..., 1]
    pale = (0.5 + 0.5 * np.sin(x / 0.7 + 1.0) * np.cos(y / 0.9))[..., None]
    blotched = albedo * (1.0 - 0.6 * pale) + 0.6 * pale * 0.45  # towards a pale grey
    conf = geo.mask.astype(np.float32)

    def shoulder(linear: np.ndarray) -> np.ndarray:
        return 1.3 * linear / (linear + 0.3)

    def read(linear: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        color = (np.clip(linear, 0, 1) ** (1 / filters.GAMMA)).astype(np.float32)
        candidates = CandidateColours.read(color, _fit_candidates(conf, geo))
        skin, reference = _skin_mask(candidates, conf)
        whitened, whitening = whitened_skin(candidates, skin, reference)
        return skin, whitened, whitening.correlation

    skin, whitened, correlation = read(shoulder(albedo * shading))
    left_out = geo.mask & ~skin
    assert correlation >= WHITENING_CORRELATION and left_out.sum() > 500, (correlation, left_out.sum())
    assert whitened[left_out].mean() > 0.9 and not whitened[skin].any()
    assert float(shading[whitened].mean()) > float(np.quantile(shading[geo.mask], 0.9))  # the lit skin
    for linear in (blotched * shading, shoulder(blotched * shading)):
        _, whitened, correlation = read(linear)
        assert correlation < WHITENING_CORRELATION and not whitened.any(), correlation


def test_the_whitening_of_lit_skin_is_taken_out_where_the_photo_saw_it_and_nowhere_else() -> None:
    """Fitted as skin, lit skin a camera whitened is de-lit to the right lightness but stays paler
    than the skin in shade: ``latent.unwhitened`` moves it back towards the skin's chromaticity by
    the paleness its brightness gives it on the measured trend. The skin the photo did not see (the
    fill) and the skin darker than the reference stay as they are."""
    geo = sphere_atlas(256)
    light = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])
    shading = (0.2 + 0.8 * np.clip(geo.normals @ light, 0, None))[..., None]
    albedo = np.array([0.8, 0.5, 0.35], np.float32) ** filters.GAMMA
    linear = 1.3 * albedo * shading / (albedo * shading + 0.3)  # a tone curve's shoulder
    color = (np.clip(linear, 0, 1) ** (1 / filters.GAMMA)).astype(np.float32)
    conf = geo.mask.astype(np.float32)
    candidates = CandidateColours.read(color, _fit_candidates(conf, geo))
    skin, reference = _skin_mask(candidates, conf)
    _, whitening = whitened_skin(candidates, skin, reference)
    assert whitening.camera and whitening.slope > 0.2, whitening
    unseen = geo.mask & (geo.positions[..., 0] > 0.3)  # a side the photo did not see
    conf[unseen] = 0.0

    out, moved = unwhitened(color, conf, reference, whitening)

    def off_skin(rgb: np.ndarray) -> np.ndarray:
        """Each texel's chromaticity's distance from the skin's reference."""
        return np.abs(rgb / rgb.sum(axis=-1, keepdims=True) - reference.chroma).max(axis=-1)

    brightness = color.sum(axis=-1)
    lit = geo.mask & ~unseen & (brightness > 1.2 * reference.total)
    assert lit.sum() > 500 and moved >= 0.8 * lit.sum(), (lit.sum(), moved)
    before, after = float(np.median(off_skin(color)[lit])), float(np.median(off_skin(out)[lit]))
    assert after < 0.5 * before, (before, after)
    unclipped = lit & (out.max(axis=-1) < 0.999)  # a channel moved past white is clipped
    assert unclipped.sum() > 0.5 * lit.sum()
    np.testing.assert_allclose(out.sum(axis=-1)[unclipped], brightness[unclipped], rtol=1e-4)
    untouched = unseen | (geo.mask & (brightness < reference.total)) | ~geo.mask
    np.testing.assert_array_equal(out[untouched], color[untouched])


def test_texels_excluded_from_the_whitening_are_neither_measured_nor_taken() -> None:
    """A dark skin's eye whites lie on the line from its chromaticity to grey, short of WHITENED and
    brighter than the skin (``latent.feature_openings`` names them): counted, they move the trend
    read on the skin (here they break it: correlation 0.99 -> 0.71) or are taken for whitened skin
    themselves (the demo head: amber whites). Excluded, the skin's whitening reads as without them."""
    geo = sphere_atlas(256)
    light = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])
    shading = (0.2 + 0.8 * np.clip(geo.normals @ light, 0, None))[..., None]
    albedo = np.array([0.40, 0.22, 0.12], np.float32) ** filters.GAMMA  # a dark skin
    linear = 1.3 * albedo * shading / (albedo * shading + 0.3)  # a tone curve's shoulder
    skin_only = (np.clip(linear, 0, 1) ** (1 / filters.GAMMA)).astype(np.float32)
    conf = geo.mask.astype(np.float32)
    direction = geo.positions / np.maximum(np.linalg.norm(geo.positions, axis=-1, keepdims=True), 1e-9)
    whites = np.zeros(geo.mask.shape, bool)
    for x in (-0.3, 0.3):  # two eyes on the lit front
        centre = np.array([x, 0.1, 1.0]) / np.linalg.norm([x, 0.1, 1.0])
        whites |= geo.mask & (direction @ centre > np.cos(np.radians(6.0)))
    with_whites = skin_only.copy()
    with_whites[whites] = (0.62, 0.55, 0.44)  # L* 59, b* +12

    def read(color: np.ndarray, exclude: np.ndarray | None):
        candidates = CandidateColours.read(color, _fit_candidates(conf, geo))
        skin, reference = _skin_mask(candidates, conf)
        return whitened_skin(candidates, skin, reference, exclude)

    _, clean = read(skin_only, None)
    assert clean.camera, clean
    _, counted = read(with_whites, None)
    assert abs(counted.correlation - clean.correlation) > 0.1, (counted, clean)
    taken, excluded = read(with_whites, whites)
    assert not taken[whites].any()
    assert abs(excluded.correlation - clean.correlation) < 0.005, (excluded, clean)
    assert abs(excluded.slope - clean.slope) < 0.005, (excluded, clean)


def test_eye_rims_drawn_in_the_eyes_box_are_those_drawn_over_the_whole_atlas() -> None:
    """The rims are dilated and blurred over the eyes' box alone (over the whole 1024² atlas it cost
    0.12-0.19 s of a toon or comic request): the same values, eyes anywhere, at the edge too."""
    import cv2
    from avatartex.engines.classic import repaint
    from avatartex.features import fill_polygon

    rng = np.random.default_rng(3)
    for shape, unit in (((1024, 1024), 160.0), ((512, 512), 20.0), ((512, 512), 200.0)):
        for _ in range(12):
            centre = rng.uniform(-0.05, 1.05, 2) * shape[::-1]
            angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
            eye = centre + np.c_[np.cos(angles), 0.4 * np.sin(angles)] * unit * 0.3
            lines = {"right_eye": eye, "left_eye": eye + [unit, rng.uniform(-5, 5)]}
            rims = np.maximum(fill_polygon(shape, lines["right_eye"]), fill_polygon(shape, lines["left_eye"]))
            reach = max(1, int(round(repaint.EYE_RIM_IOD * unit)))
            disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
            whole = np.clip(cv2.GaussianBlur(cv2.dilate(rims, disc), (0, 0), reach / 3), 0.0, 1.0)
            np.testing.assert_array_equal(repaint.eye_rims(lines, shape, unit), whole)


def test_the_grain_of_the_last_few_seeds_is_kept_on_the_atlas(monkeypatch) -> None:
    """A variant at another seed between two at the panel's seed drew the grain again (0.26 s at
    1024²): the last GRAIN_SEEDS_KEPT seeds' grain is kept, the same arrays a fresh draw gives."""
    import copy

    from avatartex.engines.classic import inpaint

    atlas = copy.copy(sphere_atlas(64))
    atlas.__dict__.pop("_cache", None)  # its own cache, not the shared fixture's
    drawn = []
    draw = inpaint.surface_grain

    def counted(*args):
        drawn.append(args[-1])
        return draw(*args)

    monkeypatch.setattr(inpaint, "surface_grain", counted)
    first = inpaint.grain_octaves(atlas, 0)
    inpaint.grain_octaves(atlas, 3)
    again = inpaint.grain_octaves(atlas, 0)
    assert drawn == [0, 3] and again is first
    for seed in range(1, inpaint.GRAIN_SEEDS_KEPT + 1):
        inpaint.grain_octaves(atlas, 10 + seed)
    inpaint.grain_octaves(atlas, 0)  # the oldest let go: drawn again, the same
    assert drawn[-1] == 0 and len(drawn) == 3 + inpaint.GRAIN_SEEDS_KEPT
    octaves, held = draw(atlas, None, 0)
    np.testing.assert_array_equal(inpaint.grain_octaves(atlas, 0), octaves * held)


def test_dilated_and_blurred_in_the_areas_box_is_as_over_the_whole_atlas() -> None:
    """``atlas_filters.dilated_blurred`` works in the box of the area's texels (the flat styles' eye
    rims, focal features, cleared lips and mouth folds cost 0.05-0.19 s each over a 1024² atlas): the
    values cv2 gives over the whole atlas, for blobs anywhere, at its edges too."""
    import cv2

    rng = np.random.default_rng(5)
    for reach, sigma in ((0, 2.5), (7, 0.0), (3, 1.0), (12, 6.0), (1, 0.5)):
        for _ in range(8):
            area = np.zeros((300, 400), np.float32)
            y, x = rng.integers(-10, 310), rng.integers(-10, 410)
            cv2.ellipse(
                area,
                (int(x), int(y)),
                (int(rng.integers(2, 40)), int(rng.integers(2, 25))),
                30.0,
                0,
                360,
                1.0,
                -1,
            )
            whole = area
            if reach:
                disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
                whole = cv2.dilate(whole, disc)
            if sigma:
                whole = cv2.GaussianBlur(whole, (0, 0), sigma)
            np.testing.assert_array_equal(filters.dilated_blurred(area, reach, sigma), whole)
