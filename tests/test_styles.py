"""Style presets: the table loads, each preset is complete, unknown names are a typed error."""

from __future__ import annotations

import pytest
from avatartex.engines.classic.repaint import STYLE_FILTERS
from avatartex.protocol import AvatarTexError, ErrorCode
from avatartex.styles import Style, get_style, list_styles

REQUIRED = ("photoreal", "painterly", "toon", "comic")


def test_presets_are_complete_and_unique() -> None:
    styles = list_styles()
    names = [s.name for s in styles]
    assert len(names) == len(set(names))
    assert set(REQUIRED) <= set(names)
    for style in styles:
        assert isinstance(style, Style)
        assert style.label and style.prompt and style.negative_prompt
        assert 0.0 < style.inpaint_strength <= 1.0
        assert 0.0 < style.repaint_strength <= 1.0
        assert style.guidance_scale > 1.0
        assert style.prior is None or isinstance(style.prior, str)
        # Every classic filter a preset names is implemented (or is "none").
        assert style.classic.get("filter", "none") in {"none", *STYLE_FILTERS}


def test_presets_differ_where_they_should() -> None:
    photoreal, toon = get_style("photoreal"), get_style("toon")
    assert photoreal.classic["filter"] == "none"
    assert toon.classic["filter"] == "toon"
    assert toon.prompt != photoreal.prompt
    assert toon.repaint_strength > photoreal.repaint_strength


def test_get_style_unknown_names_the_known_ones() -> None:
    with pytest.raises(AvatarTexError) as info:
        get_style("vaporwave")
    err = info.value
    assert err.code == ErrorCode.UNKNOWN_STYLE
    assert "vaporwave" in err.message
    for name in REQUIRED:
        assert name in err.message and name in err.hint


def test_classic_at_interpolates_from_photoreal() -> None:
    toon = get_style("toon")
    photoreal = get_style("photoreal")
    assert toon.classic_at("flatten", 0.0, 0.0) == pytest.approx(photoreal.classic["flatten"])
    assert toon.classic_at("flatten", 0.0, 1.0) == pytest.approx(toon.classic["flatten"])
    half = toon.classic_at("detail", 1.0, 0.5)
    assert half == pytest.approx((photoreal.classic["detail"] + toon.classic["detail"]) / 2)
    # A key no preset sets gives the default at any strength.
    assert toon.classic_at("no_such_key", 0.25, 0.7) == pytest.approx(0.25)


@pytest.mark.parametrize("name", [style.name for style in list_styles()])
def test_a_style_said_seed_free_is_the_same_texture_for_every_seed_and_the_others_are_not(name: str) -> None:
    """``Style.seed_free`` (sent in ``hello``: the add-on warns of two variants that differ by their
    seed alone) agrees with what the classic engine does: the three stages on the sphere's atlas,
    seeds 0 and 1, fully applied; and under a strength of 1 every style depends on the seed."""
    import numpy as np
    from avatartex.engines.base import AtlasTexture
    from avatartex.engines.classic.inpaint import ClassicInpaint
    from avatartex.engines.classic.latent import ClassicLatent
    from avatartex.engines.classic.repaint import ClassicRepaint
    from classic_fixtures import make_ctx, sphere_atlas

    geo = sphere_atlas(128)
    rng = np.random.default_rng(3)  # a skin seen from the front, blotched a little
    color = np.clip(np.array([0.8, 0.6, 0.5], np.float32) + 0.05 * rng.standard_normal((128, 128, 3)), 0, 1)
    texture = AtlasTexture(color.astype(np.float32), np.clip(geo.normals[..., 2], 0, 1).astype(np.float32))

    def textured(seed: int, strength: float) -> np.ndarray:
        ctx = make_ctx(geo, name, seed=seed, strength=strength)
        out = texture
        for stage in (ClassicInpaint(), ClassicLatent(), ClassicRepaint()):
            out = stage.run(out, ctx)
        return out.color

    same = np.array_equal(textured(0, 1.0), textured(1, 1.0))
    assert same == get_style(name).seed_free
    assert not np.array_equal(textured(0, 0.5), textured(1, 0.5))
