"""The skin's shine taken out of the photo's colour (backend/avatartex/shine.py, in the classic
latent stage's de-lighting)."""

from __future__ import annotations

import numpy as np
from avatartex import atlas_filters as filters
from avatartex import shine
from avatartex.engines.classic.latent import ClassicLatent
from classic_fixtures import make_ctx, sphere_atlas

SKIN = np.array([0.72, 0.52, 0.42], np.float32) ** filters.GAMMA
"""A skin colour, linear."""


def test_white_added_to_skin_is_taken_back_out_and_nothing_else() -> None:
    shading = np.array([0.4, 0.8, 1.0, 0.8, 0.6], np.float32)[:, None]
    diffuse = SKIN * shading
    white = np.array([0.0, 0.1, 0.3, 0.0, 0.05], np.float32)
    photo = diffuse + white[:, None]
    ratio = float(SKIN.min() / SKIN.max())
    clean, taken = shine.without_shine(photo, np.ones(5), ratio - shine.CHROMA_TOLERANCE, diffuse)
    assert np.allclose(taken, white, atol=1e-4) and np.allclose(clean, diffuse, atol=1e-4)
    # Where the lobe says it cannot shine, nothing is taken, however white.
    kept, none = shine.without_shine(photo, np.zeros(5), ratio, diffuse)
    assert np.allclose(kept, photo) and not none.any()
    # Skin a little paler than the face's own colour (within CHROMA_TOLERANCE) is its own.
    pale = SKIN + 0.5 * shine.CHROMA_TOLERANCE * SKIN.max()
    same, _ = shine.without_shine(pale[None], np.ones(1), ratio, np.zeros((1, 3)))
    assert np.allclose(same, pale[None])


def test_a_tinted_shine_is_read_and_taken_out_in_its_own_colour() -> None:
    """A photo's shine is its light's colour, which a white balance leaves a little cool or warm
    (the astronaut's studio light shines bluish-white: taking out white left a bluish mark). Its
    colour is read from what the shining texels hold over the skin around, and taken out in it."""
    rng = np.random.default_rng(1)
    shading = rng.uniform(0.5, 1.0, (400, 1)).astype(np.float32)
    diffuse = SKIN * shading
    light = np.array([0.85, 0.92, 1.0], np.float32)
    amount = rng.uniform(0.05, 0.3, 400).astype(np.float32)
    photo = diffuse + amount[:, None] * light
    found = shine.shine_colour(photo, diffuse, np.ones(400))
    assert np.abs(found - light).max() < 0.02, found
    ratio = float(SKIN.min() / SKIN.max()) - shine.CHROMA_TOLERANCE
    clean, _ = shine.without_shine(photo, np.ones(400), ratio, diffuse, found)
    white, _ = shine.without_shine(photo, np.ones(400), ratio, diffuse)
    hue = diffuse / diffuse.sum(axis=1, keepdims=True)
    assert np.abs(clean / clean.sum(axis=1, keepdims=True) - hue).max() < 0.01
    assert np.abs(white / white.sum(axis=1, keepdims=True) - hue).max() > 0.01  # white leaves a tint
    # Too few shining texels to read it from: white.
    assert np.allclose(shine.shine_colour(photo[:10], diffuse[:10], np.ones(10)), 1.0)


def test_a_nearly_saturated_shine_leaves_the_skin_around_not_a_dark_hole() -> None:
    """A white highlight over skin reads as almost all white by its colour (0.7 of white over a dark
    brown): what is taken is at most what the colour holds over the skin around."""
    photo = np.array([[0.96, 0.88, 0.84]], np.float32)
    around = np.array([[0.55, 0.38, 0.30]], np.float32)
    ratio = float(SKIN.min() / SKIN.max())
    clean, taken = shine.without_shine(photo, np.ones(1), ratio, around)
    assert np.isclose(taken[0], 0.41, atol=1e-3)
    assert (clean >= around - 1e-6).all()


def test_where_the_photo_clipped_the_skin_arounds_colour_replaces_the_shines() -> None:
    """The astronaut's cheek under a bluish-white studio light: red clipped (0.96 linear), so the
    excess over the skin around is read only up to red's 0.25 of the shine, which left a pale
    grey-blue spot on the scanned head. A clipped colour takes the hue of the skin around at the
    lightness that reading leaves, as far as the lobe says it shines: never the skin around's own
    lightness, which digs a dark hole where the fitted light misjudges the texel (a light from below
    on bench/sweep.py's h020). One short of clipping keeps what the dichromatic reading gives."""
    luma = np.array([0.2126, 0.7152, 0.0722], np.float32)
    light = np.array([0.81, 0.85, 1.0], np.float32)
    around = np.array([[0.76, 0.51, 0.37]], np.float32)
    ratio = float(SKIN.min() / SKIN.max())
    clipped = np.array([[0.963, 0.861, 0.826]], np.float32)
    clean, taken = shine.without_shine(clipped, np.ones(1), ratio, around, light)
    left = clipped - taken[:, None] * light
    assert np.isclose(clean @ luma, left @ luma, rtol=1e-3)  # its lightness: what is left
    assert np.abs(clean / clean.sum() - around / around.sum()).max() < 1e-3  # the skin's hue
    assert np.abs(left / left.sum() - around / around.sum()).max() > 0.03  # not what was left's
    # Skin around far darker than what is left (nothing around to read, a light that misjudges the
    # texel): neither its lightness (a dark hole) nor its colour.
    for dark in (0.05 * around, np.zeros_like(around)):
        clean, taken = shine.without_shine(clipped, np.ones(1), ratio, dark, light)
        assert np.allclose(clean, clipped - taken[:, None] * light, atol=2e-3)
    half, _ = shine.without_shine(clipped, np.full(1, 0.5), ratio, around, light)
    assert 0.01 < np.abs(half / half.sum() - around / around.sum()).max()  # half the lobe: half the way
    kept, _ = shine.without_shine(clipped, np.zeros(1), ratio, around, light)
    assert np.allclose(kept, clipped)
    # Not clipped: a pale patch the light did not wash out keeps what the dichromatic reading gives.
    bright = clipped * 0.8
    clean, taken = shine.without_shine(bright, np.ones(1), ratio, around * 0.8, light)
    assert np.allclose(clean, bright - taken[:, None] * light, atol=1e-5) and taken[0] > 0


def test_the_lobe_lies_halfway_between_the_light_and_the_camera() -> None:
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(20000, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    light = np.array([0.0, 1.0, 1.0]) / np.sqrt(2.0)
    camera = np.array([0.0, 0.0, 50.0])
    found = shine.lobe(normals, normals, camera, 0.8 * light[None])
    half = (light + np.array([0.0, 0.0, 1.0])) / np.linalg.norm(light + np.array([0.0, 0.0, 1.0]))
    assert np.degrees(np.arccos(np.clip(normals[np.argmax(found)] @ half, -1, 1))) < 5.0
    away = normals @ half < np.cos(np.radians(60))
    assert found[away].max() < 0.01
    assert shine.lobe(normals, normals, camera, np.zeros((1, 3))).max() == 0.0


def _photo(with_shine: bool):
    """A skin-coloured ball in a key light and an ambient, seen from +z, with or without a shine
    (white, Blinn exponent 30) where the light mirrors towards the camera; atlas colour, confidence,
    the true shine (linear) and the camera."""
    geo = sphere_atlas(256)
    camera = np.array([0.0, 0.0, 8.0])
    light = np.array([0.4, 0.5, 0.8]) / np.linalg.norm([0.4, 0.5, 0.8])
    n = geo.normals
    shading = 0.35 + 0.65 * np.clip(n @ light, 0, None)
    view = camera - geo.positions
    view /= np.maximum(np.linalg.norm(view, axis=-1, keepdims=True), 1e-6)
    half = view + light
    half /= np.maximum(np.linalg.norm(half, axis=-1, keepdims=True), 1e-6)
    white = 0.3 * np.clip((n * half).sum(-1), 0, 1) ** 30 * (n @ light > 0) * geo.mask
    linear = SKIN * shading[..., None] + (white[..., None] if with_shine else 0.0)
    conf = (np.clip((n[..., 2] - 0.15) / 0.55, 0, 1) * geo.mask).astype(np.float32)
    color = np.where(conf[..., None] > 0, np.clip(linear, 0, 1) ** (1 / filters.GAMMA), 0).astype(np.float32)
    return geo, color, conf, white, camera


def test_the_de_lit_skin_keeps_no_shine() -> None:
    """The ball's de-lit colour where it shines: as without the shine (within a third of what the
    shine left in it before), and the same as before on a ball that does not shine."""
    geo, shiny, conf, white, camera = _photo(True)
    _, matte, _, _, _ = _photo(False)

    def delit(color, view_from):
        ctx = make_ctx(geo)
        ctx.view_from = view_from
        return ClassicLatent._delight(color, conf, ctx, 1.0), ctx

    truth, _ = delit(matte, camera)
    kept, _ = delit(shiny, None)
    found, ctx = delit(shiny, camera)
    lobe = (white > 0.1) & (conf > 0.5)
    assert lobe.sum() > 100
    left_before = np.abs(kept - truth)[lobe].mean()
    assert left_before > 8 / 255, left_before
    assert np.abs(found - truth)[lobe].mean() < left_before / 3, (
        np.abs(found - truth)[lobe].mean(),
        left_before,
    )
    assert ctx.lighting["shine"] > 0
    matte_off, _ = delit(matte, None)
    assert np.abs(truth - matte_off)[conf > 0].mean() < 1 / 255


def test_a_patch_filled_from_a_shining_mirror_keeps_none_of_its_shine() -> None:
    """The inpaint fills a patch the photo does not show from its mirror image where that is seen (the
    far side of a turned face, a patch burnt out to white); where the mirror shines, the fill carried
    its shine, which the de-lighting takes off the seen texels only after the fill. It is taken off
    what the fill carried too: the patch comes out as the matte ball's does."""
    from avatartex.engines.base import AtlasTexture
    from avatartex.engines.classic.inpaint import ClassicInpaint

    geo, shiny, conf, white, camera = _photo(True)
    _, matte, _, _, _ = _photo(False)
    # A disc round the mirror image of where the ball shines most, wider than a small hole.
    brightest = np.unravel_index(np.argmax(np.where(conf > 0.5, white, 0)), conf.shape)
    mirror = np.unravel_index(geo.mirror_index()[brightest], conf.shape)
    rows, cols = np.mgrid[0 : conf.shape[0], 0 : conf.shape[1]]
    patch = geo.mask & (
        (rows - mirror[0]) ** 2 + (cols - mirror[1]) ** 2 < (0.3 * geo.layout.face_texels_per_iod) ** 2
    )
    lost = np.where(patch, 0.0, conf).astype(np.float32)

    def completed(color):
        ctx = make_ctx(geo)
        ctx.view_from = camera
        return ClassicLatent().run(ClassicInpaint().run(AtlasTexture(color, lost), ctx), ctx).color

    left = np.abs(completed(shiny) - completed(matte))[patch].mean()
    assert left < 3 / 255, left * 255  # the mirror's shine left in it: 18/255
