"""The photo's light colour read on its eye whites and taken out (``whitebalance.py``; issue 10
item 1, "albedo without the photo's light": a light's colour is part of it)."""

from __future__ import annotations

import numpy as np
import pytest
from avatartex import regions
from avatartex import whitebalance as wb
from avatartex.face import FACE_OVAL, LEFT_EYE_CONTOUR, RIGHT_EYE_CONTOUR, analyse_portrait
from avatartex.image_io import load_texture, save_png
from avatartex.imaging import to_lab
from avatartex.pipeline import Generator
from avatartex.projection import polygon_mask
from avatartex.protocol import AvatarTexError, GenerateParams

TUNGSTEN = (1.0, 0.78, 0.52)
"""About 3200 K against daylight (linear RGB gains)."""
SHADE = (0.75, 0.88, 1.0)
"""Open shade under a blue sky, about 8000 K."""


def under_light(image: np.ndarray, gains) -> np.ndarray:
    """``image`` as a camera set for daylight records it under light of linear RGB ``gains``."""
    linear = np.power(np.clip(image, 0.0, 1.0), 2.2) * np.asarray(gains, np.float32)
    return np.power(np.clip(linear, 0.0, 1.0), 1 / 2.2).astype(np.float32)


def chroma(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (a*, b*) of the median of ``rgb`` (N, 3)."""
    return to_lab(np.median(rgb.reshape(-1, 3), axis=0).astype(np.float32))[1:]


@pytest.fixture(scope="module")
def generator():
    return Generator()


@pytest.fixture(scope="module")
def astronaut_face(generator, astronaut):
    return analyse_portrait(astronaut, "astronaut", generator.landmarker)[0]


def face_pixels(image: np.ndarray, face) -> np.ndarray:
    return image[polygon_mask(image.shape[:2], face.landmarks[list(FACE_OVAL)], grow=-0.15)]


def test_eye_whites_tinted_by_coloured_light_are_a_cast(generator, astronaut, astronaut_face):
    """The astronaut's whites read as whites under white light; under tungsten light orange, beyond
    the reds and yellows of eye whites under white light."""
    assert regions.photo_cast(regions.feature_colours(astronaut, astronaut_face)) is None
    warm = under_light(astronaut, TUNGSTEN)
    face, _ = analyse_portrait(warm, "warm", generator.landmarker)
    cast = regions.photo_cast(regions.feature_colours(warm, face))
    assert cast is not None and cast[1] > regions.SCLERA_NATURAL_AB[1][1], cast
    assert regions.cast_tint(cast) == "warm (orange)"


def test_eye_whites_too_dark_to_be_whites_say_nothing_of_the_light():
    """Where the eyes' lightest part is the lids' skin (small eyes, glasses, shadow) it is no white
    to read the light by."""

    def read(sclera):
        return regions.FeatureColours(
            regions.DEFAULT_SCLERA, regions.DEFAULT_IRIS, regions.DEFAULT_LIPS, np.array(sclera, np.float32)
        )

    assert regions.photo_cast(read([0.45, 0.25, 0.2])) is None
    cast = regions.photo_cast(read([0.72, 0.8, 0.95]))
    assert cast is not None and cast[1] < regions.SCLERA_NATURAL_AB[1][0], cast
    assert regions.cast_tint(cast) == "cool (blue)"
    assert regions.cast_tint((-9.0, 5.0)) == "green"  # a fluorescent tube's
    assert regions.cast_tint((-8.0, 21.0)) == "warm (orange) and green"  # a warm one's: both said
    unread = regions.FeatureColours(regions.DEFAULT_SCLERA, regions.DEFAULT_IRIS, regions.DEFAULT_LIPS)
    assert regions.photo_cast(unread) is None


def test_the_gains_bring_the_whites_to_white_at_their_own_lightness():
    for sclera in ([0.78, 0.64, 0.5], [0.7, 0.7, 0.78], [0.6, 0.66, 0.55]):
        sclera = np.asarray(sclera, np.float32)
        gains = wb.eye_white_gains(sclera)
        after = to_lab(wb.balanced(sclera[None], gains)[0])
        assert abs(after[0] - to_lab(sclera)[0]) < 0.5  # the exposure is left alone
        assert np.allclose(after[1:], wb.EYE_WHITE_AB, atol=0.5), after
    rgba = np.full((2, 2, 4), 0.5, np.float32)
    assert np.all(wb.balanced(rgba, [1.2, 1.0, 0.8])[..., 3] == 0.5)  # alpha untouched
    # A highlight the camera clipped white stays white (its red, clipped under a warm light, would
    # come out lower than the other two: cyan), and so does one clipped in the lowered channel only.
    clipped = np.array([[1.0, 1.0, 1.0], [1.0, 0.97, 0.9]], np.float32)
    gains = wb.eye_white_gains(np.array([0.78, 0.64, 0.5], np.float32))
    white = to_lab(wb.balanced(clipped, gains))
    assert np.all(np.abs(white[0, 1:]) < 0.5) and np.all(np.abs(white[1, 1:]) < 0.5), white


@pytest.mark.parametrize(("light", "mode"), [(TUNGSTEN, "auto"), (TUNGSTEN, "eyes"), (SHADE, "eyes")])
def test_a_photo_under_coloured_light_gets_the_skins_colour_back(
    generator, astronaut, astronaut_face, light, mode
):
    """The astronaut's photo under warm or cool light: balanced on her eye whites, her skin's a*, b*
    come back to within 3 of the photo's own (the light moved them 9-16)."""
    lit = under_light(astronaut, light)
    face, _ = analyse_portrait(lit, "lit", generator.landmarker)
    out, balance, warnings = wb.balance_portrait(lit, face, mode)
    own = chroma(face_pixels(astronaut, astronaut_face))
    assert np.linalg.norm(chroma(face_pixels(lit, face)) - own) > 8.0
    assert balance.applied and balance.gains is not None
    assert np.linalg.norm(chroma(face_pixels(out, face)) - own) < 3.0  # 0.4, 0.4, 2.3 measured
    assert any("white-balanced on its eye whites" in w for w in warnings)


def test_auto_leaves_a_photo_under_white_light_as_it_is(generator, astronaut, astronaut_face):
    out, balance, warnings = wb.balance_portrait(astronaut, astronaut_face, "auto")
    assert out is astronaut and not balance.applied and not balance.cast and warnings == []
    assert balance.eye_whites_ab is not None  # read, and white enough
    lit = under_light(astronaut, SHADE)  # a cool shade the whites allow: auto leaves it, eyes does not
    face, _ = analyse_portrait(lit, "lit", generator.landmarker)
    assert wb.balance_portrait(lit, face, "auto")[0] is lit
    off, balance, warnings = wb.balance_portrait(under_light(astronaut, TUNGSTEN), face, "off")
    assert not balance.applied and balance.cast
    assert any("white_balance=off" in w and "warm" in w for w in warnings)


def test_eyes_the_colour_of_the_skin_are_no_whites(generator, astronaut, astronaut_face):
    """A head whose eyes are not painted (a sculpture, a render: the sweep's blotched skins) has
    "whites" of its skin's colour: no light is read from them, whatever the mode."""
    painted = astronaut.copy()
    skin = np.median(face_pixels(astronaut, astronaut_face), axis=0)
    for contour in (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR):
        painted[polygon_mask(painted.shape[:2], astronaut_face.landmarks[list(contour)], grow=0.3)] = (
            skin * 1.15
        )
    assert to_lab(skin * 1.15)[0] > 60  # light enough to pass for whites
    for mode in ("auto", "eyes"):
        out, balance, warnings = wb.balance_portrait(painted, astronaut_face, mode)
        assert out is painted and not balance.applied and balance.eye_whites_ab is None
        assert (mode == "eyes") == any("colour of the skin" in w for w in warnings)
        # The report does not pass "no cast" off as a reading: none was looked for.
        assert balance.report()["eye_whites_read"] is False


def test_whites_too_coloured_for_a_light_are_left(generator, astronaut):
    """Beyond MAX_GAIN_SPREAD no lamp explains the whites' colour; a household bulb's light left in
    the photo (linear gains 1, 0.62, 0.30: the photo was refused as a painted face under the old
    bound, 2.5) is balanced."""
    for light in ((1.0, 0.45, 0.08), (0.2, 1.0, 0.2)):  # warmer than a bulb; a green no lamp gives
        lit = under_light(astronaut, light)
        face, _ = analyse_portrait(lit, "lit", generator.landmarker)
        out, balance, warnings = wb.balance_portrait(lit, face, "auto")
        assert out is lit and not balance.applied and balance.cast
        assert any("more coloured than a household bulb" in w for w in warnings)
    bulb = under_light(astronaut, (1.0, 0.62, 0.30))
    face, _ = analyse_portrait(bulb, "bulb", generator.landmarker)
    out, balance, warnings = wb.balance_portrait(bulb, face, "auto")
    assert balance.applied and any("its light was warm (orange)" in w for w in warnings)


def test_no_face_and_unread_eyes_keep_the_photo(astronaut):
    out, balance, warnings = wb.balance_portrait(astronaut, None, "eyes")
    assert out is astronaut and balance.eye_whites_ab is None
    assert any("could not be read" in w for w in warnings)
    assert wb.balance_portrait(astronaut, None, "auto")[2] == []
    with pytest.raises(AvatarTexError, match="white balance"):
        GenerateParams("m.glb", "p.png", "out", white_balance="daylight")


def test_generate_reports_and_applies_the_balance(generator, astronaut, tmp_path):
    """Through ``generate`` on the demo head: the texture from the photo under tungsten light has the
    skin of the photo under white light (auto), or keeps the light's (off); report.json says which."""
    from avatartex.demo_head import make_demo_head
    from avatartex.mesh import Mesh, load_mesh, save_capture

    head = tmp_path / "demo.npz"
    positions, triangles, uvs, pins = make_demo_head()
    save_capture(Mesh(positions, triangles, uvs, None, pins, "DemoHead"), head)
    face = generator.head(load_mesh(str(head))).atlas(512).face
    warm = save_png(tmp_path / "tungsten.png", under_light(astronaut, TUNGSTEN))
    white = save_png(tmp_path / "white.png", astronaut)
    skins, reports = {}, {}
    for name, photo, mode in (("white", white, "auto"), ("auto", warm, "auto"), ("off", warm, "off")):
        out = tmp_path / name
        params = GenerateParams(
            str(head), str(photo), str(out), size=512, engine="classic", debug=True, white_balance=mode
        )
        reports[name] = generator.generate(params)["report"]
        atlas = load_texture(out / "debug_atlas.png")[..., :3]
        skins[name] = chroma(atlas[face])
    balance = {k: r["portrait"]["white_balance"] for k, r in reports.items()}
    assert balance["white"] == {**balance["white"], "applied": False, "cast": False}
    assert balance["auto"]["applied"] and balance["auto"]["cast"] and balance["auto"]["eye_whites_ab"][1] > 16
    assert balance["off"]["cast"] and not balance["off"]["applied"]
    assert np.linalg.norm(skins["auto"] - skins["white"]) < 3.0, skins
    assert np.linalg.norm(skins["off"] - skins["white"]) > 8.0, skins


def test_a_skin_outside_any_real_skins_hues_is_said():
    """A blue-shaded photo whose eye whites pass for white came out a grey-green head (a* -1, b* +5)
    unsaid: a face region of such a colour is said, a skin's (light, dark, or the black-and-white
    photo's neutral tone) is not. So is an orange one: Grace Hopper under a tungsten light, her eye
    whites hidden by her glasses (no cast read, none taken out), came out +35, +46 unsaid."""
    from types import SimpleNamespace

    from avatartex.image_io import NEUTRAL_SKIN_AB
    from avatartex.imaging import from_lab
    from avatartex.pipeline import steps

    face = np.zeros((32, 32), bool)
    face[8:24, 8:24] = True
    geometry = SimpleNamespace(face=face)
    for lab, said in (
        ((55.0, -1.3, 4.8), True),  # the blue shade's grey-green
        ((60.0, -12.0, 10.0), True),  # green
        ((70.0, 12.0, 18.0), False),  # light skin
        ((35.0, 10.0, 16.0), False),  # dark skin
        ((65.0, *NEUTRAL_SKIN_AB), False),
        ((66.0, 9.3, 39.7), True),  # a green-cast photo's olive (Grace Hopper under a green tint)
        ((74.0, 8.4, 18.4), False),  # the astronaut's skin, a yellow one
        ((72.5, 5.5, 18.1), False),  # a blue-cast photo balanced: yellower still, and pale
        ((64.0, 28.0, 34.0), False),  # Grace Hopper's warm skin
        ((45.0, 14.0, 30.0), False),  # a tanned skin
        ((60.0, 35.0, 46.0), True),  # Grace Hopper under a tungsten light, her eye whites behind glasses
        ((50.0, 30.0, 38.0), False),  # a ruddy, tanned skin
    ):
        colour = np.broadcast_to(from_lab(np.array([lab], np.float32))[0], (32, 32, 3)).astype(np.float32)
        assert bool(steps.implausible_skin(geometry, colour)) == said, lab


def test_a_warm_skin_whose_light_could_not_be_checked_is_said():
    """A tungsten-lit photo of a dark-skinned face whose eye whites read too dark to balance on came
    out orange (a*, b* +22, +34; +13, +21 in white light) with nothing said: auto says nothing where
    it cannot read the whites. A warm skin is now said to be perhaps the light's where the whites were
    not read under auto; not where they were, not under eyes (which says its own) or off, and not a
    skin of ordinary warmth."""
    from types import SimpleNamespace

    from avatartex.imaging import from_lab
    from avatartex.pipeline import steps
    from avatartex.whitebalance import Balance

    face = np.zeros((32, 32), bool)
    face[8:24, 8:24] = True
    geometry = SimpleNamespace(face=face)
    unread, read = Balance("auto"), Balance("auto", eye_whites_ab=(3.0, 8.0))
    for lab, balance, said in (
        ((44.0, 22.5, 34.0), unread, True),  # the tungsten-lit dark skin
        ((44.0, 22.5, 34.0), read, False),
        ((44.0, 22.5, 34.0), Balance("eyes"), False),
        ((44.0, 22.5, 34.0), Balance("off"), False),
        ((64.0, 28.0, 34.0), unread, True),  # Grace Hopper's warm photo, her eyes behind glasses
        ((44.0, 13.4, 20.9), unread, False),  # the same dark skin in white light
        ((74.0, 8.4, 18.4), unread, False),  # the astronaut's
        ((45.0, 14.0, 30.0), unread, False),  # a tanned skin
        ((60.0, 35.0, 46.0), unread, False),  # beyond any skin's: implausible_skin's to say
    ):
        colour = np.broadcast_to(from_lab(np.array([lab], np.float32))[0], (32, 32, 3)).astype(np.float32)
        assert bool(steps.unchecked_warmth(geometry, colour, balance)) == said, (lab, balance)
