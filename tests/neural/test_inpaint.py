"""Stage 1 (neural inpaint) with a tiny random SD inpainting model, and the seam padding it relies on."""

from __future__ import annotations

import numpy as np
import pytest
from avatartex import atlas_filters
from avatartex.engines.neural import pipelines
from avatartex.engines.neural.config import NeuralConfig
from avatartex.engines.neural.inpaint import NeuralInpaint, choose_model
from avatartex.protocol import Cancelled
from neural_helpers import count_calls, make_context, make_texture


def test_wrap_pad_then_crop_is_identity_and_caps_do_not_wrap():
    rng = np.random.default_rng(0)
    image = rng.random((20, 24, 3)).astype(np.float32)
    padded = atlas_filters.wrap_pad(image, band_rows=15, pad=8)
    assert padded.shape == (20, 40, 3)
    assert np.array_equal(padded[:15, :8], image[:15, -8:]) and np.array_equal(
        padded[:15, -8:], image[:15, :8]
    )
    assert np.array_equal(padded[15:, :8], np.repeat(image[15:, :1], 8, axis=1))  # caps: edge, not wrap
    assert np.allclose(atlas_filters.wrap_crop(padded, 24, 15, 8), image, atol=1e-6)


def test_seam_crossfade_makes_the_back_seam_continuous():
    # A "generated" padded image that is a ramp across the padded width never wraps by itself: the naive
    # crop has a jump of ~W/(W+2P) between columns 0 and W-1; the cross-fade leaves one ramp step.
    width, pad = 64, 8
    ramp = np.tile(np.arange(width + 2 * pad, dtype=np.float32) / (width + 2 * pad), (4, 1))
    naive = ramp[:, pad : pad + width]
    fixed = atlas_filters.wrap_crop(ramp, width, band_rows=4, pad=pad)
    step = 1.0 / (width + 2 * pad)
    assert abs(naive[0, 0] - naive[0, -1]) > 0.7
    assert abs(fixed[0, 0] - fixed[0, -1]) <= step + 1e-6
    # The non-periodic rise is spread over the fade columns instead of one edge (3 ramp steps at most).
    assert np.abs(np.diff(fixed[0])).max() <= 3 * step + 1e-5


def test_high_confidence_texels_never_change_and_holes_are_filled(tiny_config):
    texture = make_texture()
    ctx = make_context()
    out = NeuralInpaint(tiny_config).run(texture, ctx)
    full = texture.confidence == 1.0
    hole = texture.confidence == 0.0
    assert np.array_equal(out.color[full], texture.color[full])
    assert np.abs(out.color[hole] - texture.color[hole]).mean() > 0.05
    half = texture.confidence == 0.5  # blended halfway: at most half of the full change
    assert np.abs(out.color[half] - texture.color[half]).max() <= 0.5 + 1e-6
    assert np.array_equal(out.confidence, texture.confidence)
    assert out.color.dtype == np.float32 and out.color.min() >= 0 and out.color.max() <= 1
    assert ctx.calls["progress"][-1][0] == 1.0 and any("step 4/4" in m for _, m in ctx.calls["progress"])
    assert np.array_equal(texture.color, make_texture().color)  # input untouched


def test_same_seed_same_texture_other_seed_differs(tiny_config):
    texture = make_texture()
    a = NeuralInpaint(tiny_config).run(texture, make_context(seed=3)).color
    b = NeuralInpaint(tiny_config).run(texture, make_context(seed=3)).color
    c = NeuralInpaint(tiny_config).run(texture, make_context(seed=4)).color
    assert np.array_equal(a, b)
    assert np.abs(a - c).mean() > 1e-3


def test_cancel_stops_within_one_step(tiny_config):
    pipe, _ = pipelines.load_inpaint(tiny_config.inpaint_model, tiny_config)
    # check_cancel runs once before the first step and once after each: cancel during step 2.
    ctx = make_context(cancel_after=2)
    with count_calls(pipe.unet) as unet_calls, pytest.raises(Cancelled):
        NeuralInpaint(tiny_config).run(make_texture(), ctx)
    assert unet_calls["n"] == 2  # of the 4 steps, only the two that had started ran


def test_hires_atlases_pick_the_hires_model():
    config = NeuralConfig(inpaint_model="sd15-inpaint", inpaint_model_hires="sdxl-inpaint", hires_size=1024)
    assert choose_model(512, config) == "sd15-inpaint"
    assert choose_model(1024, config) == "sdxl-inpaint"
    assert choose_model(2048, NeuralConfig()) == "sd15-inpaint"  # no hi-res model: resample to 512


def test_working_shape_keeps_latents_aligned():
    for size in (512, 1024, 2048):
        pad = atlas_filters.seam_pad_width(size, 0.125)
        h, w = pipelines.working_shape(size, pad, 512)
        assert h == 512 and w % 64 == 0 and abs(w / h - (size + 2 * pad) / size) < 0.1


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="GPU-only: needs a CUDA device")
def test_gpu_fp16_inpaint_keeps_confident_texels(tiny_models):
    config = NeuralConfig(
        device="cuda", dtype="fp16", inpaint_model=str(tiny_models.inpaint), work_size=32, inpaint_steps=2
    )
    texture = make_texture()
    out = NeuralInpaint(config).run(texture, make_context())
    full = texture.confidence == 1.0
    assert np.array_equal(out.color[full], texture.color[full]) and np.isfinite(out.color).all()
