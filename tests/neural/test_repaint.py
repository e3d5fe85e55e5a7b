"""Stage 3 (neural repaint): identity at strength 0, detail re-injection, determinism, cancel."""

from __future__ import annotations

import numpy as np
import pytest
from avatartex.engines.neural import pipelines
from avatartex.engines.neural.repaint import NeuralRepaint, effective_steps, inject_detail
from avatartex.protocol import Cancelled
from neural_helpers import count_calls, make_context, make_style, make_texture


def test_strength_zero_is_identity(tiny_config):
    texture = make_texture()
    for ctx in (make_context(strength=0.0), make_context(style=make_style(repaint_strength=0.0))):
        out = NeuralRepaint(tiny_config).run(texture, ctx)
        assert np.array_equal(out.color, texture.color) and out.color is not texture.color
    assert effective_steps(20, 0.04) == 0 and effective_steps(20, 0.3) == 6


def test_a_strength_that_rounds_to_no_step_is_said_in_the_report(tiny_config):
    """report.json named the neural repaint for a texture it never touched (strength x steps under
    one step): the stage says it passed the texture on, and the report says it did not run."""
    from avatartex.engines import StagePlan

    ctx = make_context(strength=0.1)  # 0.3 x 0.1 of 4 steps
    stage = NeuralRepaint(tiny_config)
    texture = make_texture()
    assert np.array_equal(stage.run(texture, ctx).color, texture.color)
    assert "rounds to no denoising step" in ctx.passed["repaint"]
    plan = StagePlan("neural", [stage], {"repaint": "neural engine requested"}, passed=dict(ctx.passed))
    entry = plan.report()["repaint"]
    assert entry["ran"] is False and entry["engine"] == "neural" and "not run" in entry["reason"]
    ran = make_context(strength=2.0)
    stage.run(texture, ran)
    assert "repaint" not in ran.passed


def test_strength_sets_the_denoising_steps_and_seeds_reproduce(tiny_config):
    # Random tiny models cannot show "a small change" (their VAE round trip is noise); what they can show
    # is that the strength sets how many of the 4 steps run, and that seeds reproduce exactly.
    texture = make_texture()
    pipe, _ = pipelines.load_repaint(tiny_config.repaint_model, tiny_config.controlnet_model, tiny_config)
    with count_calls(pipe.unet) as low_calls:
        low = (
            NeuralRepaint(tiny_config).run(texture, make_context(seed=1, strength=0.5)).color
        )  # 0.25 -> 1 step
    with count_calls(pipe.unet) as high_calls:
        NeuralRepaint(tiny_config).run(texture, make_context(seed=1, strength=2.0))  # 1.0 -> 4 steps
    assert (low_calls["n"], high_calls["n"]) == (1, 4)
    again = NeuralRepaint(tiny_config).run(texture, make_context(seed=1, strength=0.5)).color
    other = NeuralRepaint(tiny_config).run(texture, make_context(seed=2, strength=0.5)).color
    assert np.array_equal(low, again) and np.abs(low - other).mean() > 1e-3
    assert np.isfinite(low).all() and not np.array_equal(low, texture.color)


def test_inject_detail_swaps_exactly_the_detail_bands():
    # Reference = image + a checkerboard whose 2x2 blocks average to zero: the Haar approximation of
    # both is the same, so full weight must give the reference exactly, zero weight the image exactly.
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    image = np.repeat(((xx + yy) / 64.0)[..., None], 3, axis=2)
    checker = 0.1 * np.where((xx + yy) % 2 == 0, 1.0, -1.0)[..., None].astype(np.float32)
    reference = image + checker
    assert np.allclose(
        inject_detail(image, reference, np.ones((32, 32), np.float32), 1), reference, atol=1e-5
    )
    assert np.allclose(inject_detail(image, reference, np.zeros((32, 32), np.float32), 1), image, atol=1e-6)
    half = np.zeros((32, 32), np.float32)
    half[:, :16] = 1.0
    out = inject_detail(image, reference, half, 1)
    assert np.allclose(out[:, :16], reference[:, :16], atol=1e-5) and np.allclose(
        out[:, 16:], image[:, 16:], atol=1e-5
    )


def test_portrait_moles_survive_the_repaint(tiny_config):
    # The portrait has dark 2x2 "moles" that the (blurred) input texture lacks; with detail guidance the
    # repaint puts them back where the portrait sees the head, without it they stay missing.
    texture = make_texture()
    texture.color[:] = 0.6
    texture.confidence[:] = 1.0
    ctx = make_context(strength=0.5)
    ctx.portrait[:] = 0.6
    moles = [(20, 20), (24, 30), (30, 22)]
    for y, x in moles:
        ctx.portrait[y + 8 : y + 10, x + 8 : x + 10] = 0.1  # portrait_coords are texel + 8.5
    with_detail = NeuralRepaint(tiny_config).run(texture, ctx).color
    tiny_config.detail_weight = 0.0
    without = NeuralRepaint(tiny_config).run(texture, make_context(strength=0.5)).color

    def contrast(img):
        return np.mean(
            [img[y - 3 : y + 5, x - 3 : x + 5].mean() - img[y : y + 2, x : x + 2].mean() for y, x in moles]
        )

    assert contrast(with_detail) > 0.15 > 0.05 > abs(contrast(without))


def test_portrait_detail_stays_off_what_the_regions_step_filled(tiny_config):
    # The same moles, where the regions step put a fill under the photo (confidence 1, the photo's
    # share 0: a smile's teeth taken off and the lips filled in): none come back there.
    texture = make_texture()
    texture.color[:] = 0.6
    texture.confidence[:] = 1.0
    moles = [(20, 20), (24, 30), (30, 22)]

    def run(share):
        ctx = make_context(strength=0.5)
        ctx.portrait[:] = 0.6
        for y, x in moles:
            ctx.portrait[y + 8 : y + 10, x + 8 : x + 10] = 0.1  # portrait_coords are texel + 8.5
        ctx.photo_share = share
        return NeuralRepaint(tiny_config).run(texture, ctx).color

    full = run(np.ones((48, 48), np.float32))
    filled = run(np.zeros((48, 48), np.float32))

    def contrast(img):
        return np.mean(
            [img[y - 3 : y + 5, x - 3 : x + 5].mean() - img[y : y + 2, x : x + 2].mean() for y, x in moles]
        )

    assert contrast(full) > 0.15 > 0.05 > abs(contrast(filled))


def test_cancel_stops_within_one_step(tiny_config):
    pipe, _ = pipelines.load_repaint(tiny_config.repaint_model, tiny_config.controlnet_model, tiny_config)
    ctx = make_context(strength=2.0, cancel_after=2)  # 4 steps; cancel pressed during step 2
    with count_calls(pipe.unet) as unet_calls, pytest.raises(Cancelled):
        NeuralRepaint(tiny_config).run(make_texture(), ctx)
    assert unet_calls["n"] == 2
