"""StyleGAN2 building blocks, prior training (falling loss, resume), latent optimisation and stage 2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from avatartex.engines.neural.config import NeuralConfig
from avatartex.engines.neural.inversion import project
from avatartex.engines.neural.latent import NeuralLatent
from avatartex.engines.neural.prior import load_prior, save_prior
from avatartex.engines.neural.stylegan2 import (
    Discriminator,
    Generator,
    GeneratorConfig,
    downsample2d,
    modulated_conv2d,
    upsample2d,
)
from avatartex.protocol import AvatarTexError, Cancelled
from avatartex_tools.train_prior import TrainConfig, load_textures, train
from neural_helpers import make_context, make_texture

TINY = GeneratorConfig(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16)


def _target_textures(n: int = 32) -> torch.Tensor:
    """Reddish atlas-like textures with a horizontal gradient, in -1..1."""
    x = torch.linspace(-1, 1, 16)
    tex = torch.zeros(n, 3, 16, 16)
    tex[:, 0] = 0.6
    tex[:, 1] = -0.5 + 0.3 * x
    tex[:, 2] = -0.6
    return tex + 0.05 * torch.randn(tex.shape, generator=torch.Generator().manual_seed(0))


def _colour_error(generator: Generator, textures: torch.Tensor) -> float:
    with torch.no_grad():
        z = torch.randn(64, generator.config.z_dim, generator=torch.Generator().manual_seed(5))
        images = generator(z, noise_mode="const")
    return float((images.mean(dim=(0, 2, 3)) - textures.mean(dim=(0, 2, 3))).abs().mean())


def test_shapes_and_latent_count():
    torch.manual_seed(0)
    generator = Generator(TINY)
    assert TINY.num_ws == 6 and generator.mapping(torch.randn(2, 16)).shape == (2, 6, 16)
    images = generator(torch.randn(2, 16))
    assert images.shape == (2, 3, 16, 16)
    assert Discriminator(16, channel_base=128, channel_max=16)(images).shape == (2, 1)


def test_fir_resampling_preserves_flat_images():
    kernel = torch.tensor([1.0, 3.0, 3.0, 1.0])
    kernel = kernel[:, None] * kernel[None] / 64
    flat = torch.full((1, 2, 8, 8), 0.7)
    assert torch.allclose(
        upsample2d(flat, kernel)[..., 2:-2, 2:-2], torch.full((1, 2, 12, 12), 0.7), atol=1e-6
    )
    assert torch.allclose(
        downsample2d(flat, kernel)[..., 1:-1, 1:-1], torch.full((1, 2, 2, 2), 0.7), atol=1e-6
    )


def test_upsampling_without_the_zeros_is_the_zero_inserted_filter(monkeypatch):
    """``_upfir`` (a stride-2 transposed convolution) gives what zero insertion then the FIR filter
    gives, for the paddings the generator uses and a filter that is not symmetric; so does the
    channels-folded form the ONNX export takes."""
    from avatartex.engines.neural.stylegan2 import _fir, _fir_kernel, _upfir, _zero_insert

    x = torch.randn(2, 3, 5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    kernels = (_fir_kernel().double(), torch.rand(4, 4, dtype=torch.float64))
    cases = [(kernel, pad) for kernel in kernels for pad in ((2, 1, 2, 1), (3, 2, 3, 2))]
    expected = [_fir(_zero_insert(x), kernel, pad, 4.0) for kernel, pad in cases]
    for (kernel, pad), want in zip(cases, expected, strict=True):
        assert torch.allclose(_upfir(x, kernel, pad, 4.0), want, atol=1e-12)
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    for (kernel, pad), want in zip(cases, expected, strict=True):
        assert torch.allclose(_upfir(x, kernel, pad, 4.0), want, atol=1e-12)


def test_demodulation_makes_convolution_independent_of_style_scale():
    torch.manual_seed(0)
    x, weight, styles = torch.randn(2, 8, 6, 6), torch.randn(4, 8, 3, 3), torch.rand(2, 8) + 0.5
    a = modulated_conv2d(x, weight, styles)
    assert torch.allclose(a, modulated_conv2d(x, weight, 5.0 * styles), atol=1e-5)
    assert not torch.allclose(
        modulated_conv2d(x, weight, styles, demodulate=False),
        modulated_conv2d(x, weight, 5.0 * styles, demodulate=False),
    )
    # Unit-variance inputs give roughly unit-variance outputs whatever the weights' scale.
    big = modulated_conv2d(torch.randn(1, 64, 32, 32), 10 * torch.randn(32, 64, 3, 3), torch.ones(1, 64))
    assert 0.7 < float(big.std()) < 1.3


def test_tiny_stylegan2_trains_with_falling_loss_and_resumes(tmp_path):
    textures = _target_textures()
    torch.manual_seed(0)
    before = _colour_error(Generator(TINY), textures)
    config = TrainConfig(
        generator=TINY,
        batch=4,
        steps=40,
        lr=0.002,
        checkpoint_every=10,
        preview_count=4,
        ema_half_life_images=20,
        pl_weight=0.0,  # in 32 steps it slows the colour fit; tested in test_stylegan2_ada.py
        device="cpu",
    )
    first = train(textures, tmp_path, config, max_steps=32)
    assert first.step == 32 and first.resumed_from == 0
    # The discriminator's loss falls from chance level (2 ln 2 = 1.386) as it learns the data (medians:
    # GAN losses spike now and then)...
    assert np.median(first.losses_d[-8:]) < 0.75 * np.median(first.losses_d[:4])
    # ...and the generator's samples move towards the data's colour.
    assert _colour_error(first.generator, textures) < 0.6 * before
    second = train(textures, tmp_path, config, max_steps=4)
    assert second.resumed_from == 32 and second.step == 36
    from PIL import Image

    with Image.open(second.preview) as im:
        assert im.size == (32, 32)  # 2 x 2 grid of 16 px samples
    prior = load_prior(second.prior)
    assert prior.config == TINY and not any(p.requires_grad for p in prior.parameters())
    bad = TrainConfig(
        generator=GeneratorConfig(
            resolution=16, z_dim=8, w_dim=8, mapping_layers=2, channel_base=128, channel_max=16
        ),
        steps=1,
        device="cpu",
    )
    with pytest.raises(AvatarTexError):
        train(textures, tmp_path, bad)  # a different architecture never resumes silently


def test_load_textures_reads_a_folder(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(tmp_path / f"t{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    textures = load_textures(tmp_path, 16)
    assert textures.shape == (3, 3, 16, 16) and float(textures[0].mean()) == pytest.approx(-1.0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AvatarTexError):
        load_textures(tmp_path / "empty", 16)


def _random_prior(tmp_path):
    torch.manual_seed(0)
    generator = Generator(TINY).eval().requires_grad_(False)
    return generator, save_prior(generator, tmp_path / "prior.safetensors")


def test_latent_optimisation_lowers_the_masked_loss(tmp_path):
    generator, _ = _random_prior(tmp_path)
    with torch.no_grad():
        ws = generator.mapping(torch.randn(1, 16)) + 0.3 * torch.randn(1, TINY.num_ws, 16)
        target = (
            ((generator.synthesis(ws, noise_mode="const")[0].clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
        )
    weight = np.zeros((16, 16), np.float32)
    weight[:, :10] = 1.0
    wrong = target.copy()
    wrong[:, 10:] = 1.0 - wrong[:, 10:]  # garbage where the weight is 0 must not matter
    result = project(generator, wrong, weight, steps=30, lr=0.05, seed=0)
    assert result.losses[-1] < 0.6 * result.losses[0]
    assert result.image.shape == (16, 16, 3) and result.ws.shape == (1, TINY.num_ws, 16)
    again = project(generator, wrong, weight, steps=30, lr=0.05, seed=0)
    assert np.array_equal(result.image, again.image)


def test_latent_cancel_stops_within_one_step(tmp_path):
    generator, _ = _random_prior(tmp_path)
    calls = {"n": 0, "steps": 0}

    def cancel():
        calls["n"] += 1
        if calls["n"] > 3:
            raise Cancelled()

    with pytest.raises(Cancelled):
        project(
            generator,
            np.zeros((16, 16, 3), np.float32),
            np.ones((16, 16), np.float32),
            steps=50,
            progress=lambda f, m: calls.__setitem__("steps", calls["steps"] + 1),
            check_cancel=cancel,
        )
    assert calls["steps"] == 3


def test_latent_stage_keeps_confident_texels(tmp_path):
    from avatartex.engines.neural.config import NeuralConfig

    _, path = _random_prior(tmp_path)
    texture = make_texture(size=32)
    ctx = make_context(size=32, band_rows=24)
    out = NeuralLatent(NeuralConfig(device="cpu", prior=str(path), latent_steps=5)).run(texture, ctx)
    full, hole = texture.confidence == 1, texture.confidence == 0
    assert np.array_equal(out.color[full], texture.color[full])
    assert np.abs(out.color[hole] - texture.color[hole]).mean() > 0.02
    assert ctx.warnings == [] and "masked L1" in ctx.calls["progress"][-1][1]


def test_latent_stage_needs_a_prior():
    with pytest.raises(ValueError):
        NeuralLatent(NeuralConfig())
