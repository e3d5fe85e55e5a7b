"""Stage 2, neural: find the StyleGAN2 W+ latent whose texture matches the stage-1 atlas where the
portrait backs it (masked L1 + a perceptual term + a pull towards the average latent).

The perceptual term uses a small fixed convolutional network with random weights (seeded, never
trained): random conv features are a known-good stand-in for VGG/LPIPS in inversion (they compare
local structure at several scales), need no download, and are the same on every machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...imaging import resize


class RandomFeatures(nn.Module):
    """Three stages of fixed random 3x3 convs + lrelu + 2x pooling: multi-scale local structure."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64), seed: int = 1234) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        layers = []
        in_ch = 3
        for width in widths:
            conv = nn.Conv2d(in_ch, width, 3, padding=1, padding_mode="reflect")
            with torch.no_grad():
                conv.weight.copy_(
                    torch.randn(conv.weight.shape, generator=gen) * math.sqrt(2.0 / (in_ch * 9))
                )
                conv.bias.zero_()
            layers.append(conv)
            in_ch = width
        self.convs = nn.ModuleList(layers)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features at full, 1/2 and 1/4 resolution, each unit-normalised over channels (as LPIPS)."""
        feats = []
        for i, conv in enumerate(self.convs):
            if i:
                x = F.avg_pool2d(x, 2)
            x = F.leaky_relu(conv(x), 0.2)
            feats.append(x / (x.square().sum(dim=1, keepdim=True) + 1e-8).sqrt())
        return feats


def masked_l1(image: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference weighted per pixel by ``weight`` (N, 1, H, W)."""
    return ((image - target).abs() * weight).sum() / (weight.sum() * image.shape[1] + 1e-8)


def masked_perceptual(
    net: RandomFeatures, image: torch.Tensor, target: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Feature distance, each scale weighted by the (pooled) confidence."""
    total = image.new_zeros(())
    for fa, fb in zip(net(image), net(target), strict=True):
        w = F.adaptive_avg_pool2d(weight, fa.shape[-2:])
        total = total + ((fa - fb).square().sum(dim=1, keepdim=True) * w).sum() / (w.sum() + 1e-8)
    return total


@dataclass
class Projection:
    """Result of ``project``."""

    ws: torch.Tensor
    """(1, num_ws, w_dim) optimised W+ latent."""
    image: np.ndarray
    """(R, R, 3) float32 0..1 texture the generator makes from ``ws``."""
    losses: list[float] = field(default_factory=list)
    """Masked L1 (the data term alone) before the first step and after every step."""


def latent_statistics(generator: nn.Module, samples: int = 2048, seed: int = 0) -> tuple[torch.Tensor, float]:
    """Mean w and the RMS distance of w samples from it."""
    device = next(generator.parameters()).device
    z = torch.randn(samples, generator.config.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    with torch.no_grad():
        w = generator.mapping(z)[:, 0]
    w_avg = w.mean(dim=0)
    return w_avg, float((w - w_avg).square().sum(dim=1).mean().sqrt())


def project(
    generator: nn.Module,
    target: np.ndarray,
    weight: np.ndarray,
    *,
    steps: int = 200,
    lr: float = 0.05,
    perceptual_weight: float = 0.3,
    reg_weight: float = 1e-3,
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
    check_cancel: Callable[[], None] | None = None,
) -> Projection:
    """Optimise a W+ latent so ``generator``'s texture matches ``target`` (H, W, 3, 0..1) where
    ``weight`` (H, W, 0..1) is high; ``target`` is resampled to the generator's resolution."""
    device = next(generator.parameters()).device
    res = generator.config.resolution
    torch.manual_seed(seed)
    tgt = torch.from_numpy(resize(target, res, res).transpose(2, 0, 1).copy())[None].to(device) * 2 - 1
    wgt = torch.from_numpy(resize(weight.astype(np.float32), res, res))[None, None].to(device).clamp(0, 1)
    net = RandomFeatures().to(device)
    cached = getattr(generator, "_avatartex_latent_statistics", None)
    if cached is None or cached[0] != seed:
        cached = (seed, *latent_statistics(generator, seed=seed))
        generator._avatartex_latent_statistics = cached  # 2048 mapping passes, once per prior
    _, w_avg, w_std = cached
    ws = w_avg[None, None].repeat(1, generator.config.num_ws, 1).clone().requires_grad_(True)
    optimiser = torch.optim.Adam([ws], lr=lr, betas=(0.9, 0.999))

    def data_loss(image: torch.Tensor) -> torch.Tensor:
        return masked_l1(image, tgt, wgt)

    with torch.no_grad():
        losses = [float(data_loss(generator.synthesis(ws, noise_mode="const")))]
    history: list[torch.Tensor] = []
    for step in range(steps):
        if check_cancel is not None:
            check_cancel()
        # Cosine ramp-down of the learning rate, with a short warm-up (as the official projector).
        t = step / max(steps, 1)
        for group in optimiser.param_groups:
            group["lr"] = (
                lr * min(1.0, t / 0.05 if t < 0.05 else 1.0) * 0.5 * (1 + math.cos(math.pi * t)) + 1e-5
            )
        image = generator.synthesis(ws, noise_mode="const")
        loss_data = data_loss(image)
        loss = loss_data + reg_weight * ((ws - w_avg).square().sum(dim=-1).mean() / (w_std**2 + 1e-8))
        if perceptual_weight > 0:
            loss = loss + perceptual_weight * masked_perceptual(net, image, tgt, wgt)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        history.append(loss_data.detach())  # read back once at the end: no GPU sync per step
        if progress is not None:
            progress((step + 1) / steps, f"latent step {step + 1}/{steps}")
    losses += [float(v) for v in torch.stack(history).cpu()] if history else []
    with torch.no_grad():
        image = generator.synthesis(ws, noise_mode="const")
        losses[-1] = float(data_loss(image))
    out = ((image[0].float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).cpu().numpy().astype(np.float32)
    return Projection(ws.detach(), out, losses)
