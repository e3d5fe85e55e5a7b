"""StyleGAN2-ADA training parts: adaptive discriminator augmentation and path-length regularisation."""

from __future__ import annotations

import math

import pytest
import torch
from avatartex.engines.neural.stylegan2 import Generator, GeneratorConfig, path_length_penalty
from avatartex_tools.train_prior import AdaptiveAugment, TrainConfig, train, warp

TINY = GeneratorConfig(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16)


def _images(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _affine(a, b, c, d, tx=0.0, ty=0.0) -> torch.Tensor:
    return torch.tensor([[a, b, tx], [c, d, ty], [0.0, 0.0, 1.0]])[None]


def test_pixel_blitting_is_exact():
    """Flips, quarter turns and whole-pixel shifts move pixels without resampling them."""
    x = _images(1)
    assert torch.allclose(warp(x, _affine(-1, 0, 0, 1)), x.flip(-1), atol=1e-5)
    turned = warp(x, _affine(0, -1, 1, 0))
    assert any(torch.allclose(turned, torch.rot90(x, k, (2, 3)), atol=1e-5) for k in (1, 3))
    shifted = warp(x, _affine(1, 0, 0, 1, tx=-2.0))  # output pixel (x, y) reads input (x - 2, y)
    assert torch.allclose(shifted[..., 2:], x[..., :-2], atol=1e-5)


def test_the_warp_has_a_gradient_of_its_gradient():
    """R1 through the augmentation differentiates the warp twice (torch < 2.13 has no second derivative
    of grid_sample of its own): both derivatives are checked against finite differences, and the R1
    term's gradient reaches the images."""
    images = torch.rand(2, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    g = _affine(0.9, 0.2, -0.15, 1.1, tx=0.7, ty=-0.4).repeat(2, 1, 1)
    assert torch.autograd.gradcheck(lambda x: warp(x, g), (images,))
    assert torch.autograd.gradgradcheck(lambda x: warp(x, g), (images,))
    (grad,) = torch.autograd.grad(warp(images, g).square().sum(), images, create_graph=True)
    (again,) = torch.autograd.grad(grad.square().sum(), images)
    assert float(again.abs().sum()) > 0


def test_augmentation_is_off_at_p_zero_and_keeps_grey_grey():
    x = _images()
    assert AdaptiveAugment(p=0.0)(x) is x
    augment = AdaptiveAugment(p=1.0, seed=1)
    out = augment(x)
    assert out.shape == x.shape and float((out - x).abs().mean()) > 0.1
    # Every colour transform (brightness, contrast, luma flip, hue about the luma axis, saturation) maps
    # grey to grey.
    grey = x[:, :1].repeat(1, 3, 1, 1)
    out = augment(grey)
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-5) and torch.allclose(out[:, 1], out[:, 2], atol=1e-5)


def test_p_follows_the_overfitting_heuristic():
    augment = AdaptiveAugment(target=0.6, interval=2, speed_images=100)
    for _ in range(2):
        augment.accumulate(torch.ones(5, 1))  # r_t = 1 > 0.6: D overfits, augment more
    assert augment.adjust() == 1.0 and augment.p == pytest.approx(0.1)
    augment.accumulate(-torch.ones(5, 1))
    assert math.isnan(augment.adjust()) and augment.p == pytest.approx(0.1)  # not yet a full interval
    augment.accumulate(-torch.ones(5, 1))
    augment.adjust()
    assert augment.p == 0.0
    augment.accumulate(-torch.ones(5, 1))
    augment.accumulate(-torch.ones(5, 1))
    augment.adjust()
    assert augment.p == 0.0  # never below 0


def test_path_length_penalty_tracks_its_mean_and_reaches_the_weights():
    torch.manual_seed(0)
    generator = Generator(TINY)
    z = torch.randn(4, 16)
    penalty, mean = path_length_penalty(generator, z, torch.zeros([]), decay=1.0)
    # decay 1: the mean is this batch's mean length, so the penalty is the lengths' variance (>= 0).
    assert float(mean) > 0 and float(penalty.detach()) >= 0 and not mean.requires_grad
    penalty.backward()
    assert float(generator.synthesis.b16.conv0.weight.grad.abs().sum()) > 0
    _, slow = path_length_penalty(generator, z, torch.zeros([]), decay=0.01)
    assert 0 < float(slow) < 0.05 * float(mean)


def test_training_keeps_and_resumes_ada_and_path_length_state(tmp_path):
    from safetensors.torch import load_file

    textures = _images(8).clamp(-1, 1)
    config = TrainConfig(
        generator=TINY,
        batch=4,
        steps=20,
        checkpoint_every=4,
        preview_count=1,
        device="cpu",
        ada_images=40,
        ada_target=-1.0,
    )
    first = train(textures, tmp_path, config, max_steps=8)
    saved = load_file(str(tmp_path / "checkpoint.safetensors"))
    assert float(saved["pl_mean"]) > 0 and float(saved["ada_p"]) == pytest.approx(first.augment_p)
    assert first.augment_p == pytest.approx(2 * 16 / 40)  # target -1: r_t is always above, p rises
    second = train(textures, tmp_path, config, max_steps=1)
    assert second.resumed_from == 8 and second.augment_p == pytest.approx(first.augment_p)  # not reset
