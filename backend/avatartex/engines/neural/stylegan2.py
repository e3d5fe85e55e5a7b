"""StyleGAN2 generator and discriminator (Karras et al. 2020), written for this project in plain torch.

The generator computes what the official StyleGAN2-ADA generator (NVlabs ``training/networks.py``,
and ``networks_stylegan2.py`` of the StyleGAN3 repository) computes, with the same parameter and
buffer names (``mapping.fc0.weight``, ``synthesis.b8.conv0.affine.bias``, ...), so that
``avatartex_tools.convert`` loads official snapshots by name and their images come out the same (to
float rounding; tested against an independent re-statement of the official operations in
``tests/neural/test_stylegan2_official.py``): a mapping net (``normalize_2nd_moment``, lrelu layers
with a 0.01 learning-rate multiplier, the tracked ``w_avg`` and truncation), a learned 4x4 constant,
modulated 3x3 convolutions with weight demodulation, per-layer noise, bias + lrelu with gain sqrt(2)
and the optional ``conv_clamp``, and the "skip" architecture (every resolution adds its toRGB output
to the image up-sampled with the [1,3,3,1] FIR filter).

Two details decide whether official weights reproduce official images:
* the up-sampling layers (``conv0``) are a *true convolution* (``flip_weight=False`` in the official
  ``conv2d_resample``, i.e. a transposed convolution), so their kernel is flipped relative to
  ``F.conv2d``, which correlates; the same-resolution layers (``conv1``) correlate (``flip_weight=True``);
* ``conv_clamp`` (256 in the official training configs) clamps every conv layer's output after the
  activation, also in fp32.

Modulation is applied to the activations rather than fused into grouped-convolution weights (the
official ``fused_modconv=False`` path): the same maths, and it exports to ONNX without batch-dependent
reshapes. The official code runs its highest resolutions in fp16 on a GPU (``num_fp16_res``); this
port runs fp32 unless the caller casts, so images differ from a GPU run of the official code by fp16
rounding only.

The discriminator is the residual architecture with minibatch standard deviation (trained here only;
its names are not the official ones and official discriminators are not converted). Losses: the
non-saturating logistic loss, R1 on real images and the path-length regulariser of the generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


@dataclass
class GeneratorConfig:
    """Architecture of a generator (stored in prior files as JSON metadata)."""

    resolution: int = 256
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    channel_base: int = 32768
    channel_max: int = 512
    img_channels: int = 3
    mapping_lr_mul: float = 0.01
    conv_clamp: float | None = None
    """Clamp of every synthesis conv output to +-X (official configs train with 256), None = off."""

    def channels(self, res: int) -> int:
        """Feature maps at resolution ``res`` (as in the official code)."""
        return min(self.channel_base // res, self.channel_max)

    @property
    def num_ws(self) -> int:
        """Number of W+ vectors: one per conv layer plus the last toRGB."""
        return 2 * int(math.log2(self.resolution)) - 2

    def to_dict(self) -> dict[str, float]:
        """Plain dict for JSON."""
        return asdict(self)


def _fir_kernel(device: torch.device | None = None) -> torch.Tensor:
    f = torch.tensor([1.0, 3.0, 3.0, 1.0], device=device)
    f = f[:, None] * f[None, :]
    return f / f.sum()


def _fir(
    x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int, int, int], gain: float = 1.0
) -> torch.Tensor:
    """Depthwise 2D FIR filter (a convolution, as the official ``upfirdn2d`` with ``flip_filter=False``)
    with explicit (left, right, top, bottom) zero padding: one (C, 1, k, k) kernel, ``groups=C``."""
    # The flip makes F.conv2d's correlation a convolution; [1,3,3,1] is symmetric, a custom filter may
    # not be.
    flipped = (kernel * gain).flip([0, 1]).to(x.dtype)
    if torch.onnx.is_in_onnx_export():
        return _fir_folded(x, flipped, pad)
    c = x.shape[1]
    return F.conv2d(F.pad(x, pad), flipped[None, None].expand(c, 1, -1, -1), groups=c)


def _fir_folded(x: torch.Tensor, flipped: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """``_fir`` with the channels folded into the batch and one (1, 1, k, k) kernel, for the ONNX
    export: TorchScript's exporter needs a convolution's kernel of a known shape, and a depthwise
    kernel's channel count is traced from the input (5x slower in torch, the same numbers)."""
    n, c, h, w = x.shape
    x = F.pad(x, pad).reshape(n * c, 1, h + pad[2] + pad[3], w + pad[0] + pad[1])
    x = F.conv2d(x, flipped[None, None])
    return x.reshape(n, c, x.shape[-2], x.shape[-1])


def _upfir(
    x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int, int, int], gain: float
) -> torch.Tensor:
    """``_fir(_zero_insert(x), kernel, pad, gain)`` without the zeros: a stride-2 transposed depthwise
    convolution (the zeros were three quarters of the filter's work, and of its gradient's). Needs
    left/top padding at most ``k - 1`` and right/bottom at most ``k - 2`` (what the callers use);
    the ONNX export keeps the zero-inserted form (``_fir_folded``)."""
    c, k = x.shape[1], kernel.shape[-1]
    left, right, top, bottom = pad
    fits = 0 <= left <= k - 1 and 0 <= top <= k - 1 and right <= k - 2 and bottom <= k - 2
    if not fits or torch.onnx.is_in_onnx_export():
        return _fir(_zero_insert(x), kernel, pad, gain)
    weight = (kernel * gain).to(x.dtype)[None, None].expand(c, 1, -1, -1)
    # The full transposed convolution spans (n - 1) * 2 + k samples; the padded, zero-inserted
    # signal's valid filtering starts k - 1 - left into it and spans 2n + left + right - k + 1.
    h, w = x.shape[-2:]
    crop_y, crop_x = k - 1 - top, k - 1 - left
    out_h, out_w = 2 * h + top + bottom - k + 1, 2 * w + left + right - k + 1
    full = F.conv_transpose2d(x, weight, stride=2, groups=c)
    return full[:, :, crop_y : crop_y + out_h, crop_x : crop_x + out_w]


def _zero_insert(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, 2H, 2W) with the samples at even positions and zeros between."""
    n, c, h, w = x.shape
    return F.pad(x.reshape(n, c, h, 1, w, 1), (0, 1, 0, 0, 0, 1)).reshape(n, c, 2 * h, 2 * w)


def upsample2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """x2 up-sampling: zero insertion then the FIR filter with gain 4 (official ``upsample2d``)."""
    return _upfir(x, kernel, (2, 1, 2, 1), gain=4.0)


def downsample2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """x2 down-sampling: FIR filter then keep every second sample."""
    return _fir(x, kernel, (1, 1, 1, 1))[:, :, ::2, ::2]


class FullyConnected(nn.Module):
    """Linear layer with equalised learning rate (runtime weight scaling) and optional lrelu."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer."""
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return F.leaky_relu(x, 0.2) * SQRT2 if self.activation else x


class MappingNetwork(nn.Module):
    """z -> w: pixel-normalised z through ``num_layers`` lrelu layers; tracks the average w."""

    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        num_ws: int,
        num_layers: int = 8,
        lr_mul: float = 0.01,
        w_avg_beta: float = 0.995,
    ) -> None:
        super().__init__()
        self.num_ws = num_ws
        self.w_avg_beta = w_avg_beta
        dims = [z_dim] + [w_dim] * num_layers
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnected(dims[i], dims[i + 1], lr_mul=lr_mul, activation=True))
        self.num_layers = num_layers
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: torch.Tensor,
        truncation_psi: float = 1.0,
        update_w_avg: bool = False,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """(N, z_dim) -> (N, num_ws, w_dim); truncation towards ``w_avg`` of the first
        ``truncation_cutoff`` vectors (all when None), as the official mapping network."""
        x = z.float()
        x = x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if update_w_avg:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        x = x[:, None].repeat(1, self.num_ws, 1)
        if truncation_psi != 1.0:
            if truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                head = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
                x = torch.cat([head, x[:, truncation_cutoff:]], dim=1)
        return x


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    up: bool = False,
    kernel: torch.Tensor | None = None,
) -> torch.Tensor:
    """Modulated convolution: scale input channels by ``styles``, convolve, then demodulate so every
    output channel has unit expected variance (replaces AdaIN, without its droplet artefacts)."""
    x = x * styles[:, :, None, None].to(x.dtype)
    k = weight.shape[-1]
    if up:
        # The official conv2d_resample(up=2, padding=k//2, flip_weight=False) with a 4-tap filter: the
        # zero-inserted signal (2H samples) padded by k//2 + (4+2-1)//2 = 3 before and k//2 + (4-2)//2 = 2
        # after, the FIR filter with gain up**2 = 4, and a *true* convolution with the kernel (flipped,
        # since F.conv2d correlates). Both are convolutions, so their order does not matter.
        x = _upfir(x, kernel, (3, 2, 3, 2), gain=4.0)
        x = F.conv2d(x, weight.flip([2, 3]).to(x.dtype))
    else:
        x = F.conv2d(x, weight.to(x.dtype), padding=k // 2)
    if demodulate:
        dcoefs = (weight[None] * styles[:, None, :, None, None]).square().sum(dim=(2, 3, 4)) + 1e-8
        x = x * dcoefs.rsqrt()[:, :, None, None].to(x.dtype)
    return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv + noise + bias + lrelu."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        up: bool = False,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.up = up
        self.resolution = resolution
        self.conv_clamp = conv_clamp
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.register_buffer("resample_filter", _fir_kernel())

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        """Apply the layer; ``noise_mode`` is ``random``, ``const`` (reproducible) or ``none``."""
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight, styles, demodulate=True, up=self.up, kernel=self.resample_filter)
        if noise_mode == "random":
            noise = torch.randn(
                x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype
            )
            x = x + noise * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const.to(x.dtype) * self.noise_strength
        x = F.leaky_relu(x + self.bias[None, :, None, None].to(x.dtype), 0.2) * SQRT2
        return x if self.conv_clamp is None else x.clamp(-self.conv_clamp, self.conv_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv to RGB without demodulation."""

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None
    ) -> None:
        super().__init__()
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)
        self.conv_clamp = conv_clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Apply the layer."""
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False)
        x = x + self.bias[None, :, None, None].to(x.dtype)
        return x if self.conv_clamp is None else x.clamp(-self.conv_clamp, self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network (skip architecture)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            self.num_conv = 1
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, True, conv_clamp)
            self.num_conv = 2
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, False, conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp)
        self.register_buffer("resample_filter", _fir_kernel())

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``ws`` holds num_conv + 1 vectors (the last feeds toRGB)."""
        if self.in_channels == 0:
            x = self.const[None].repeat(ws.shape[0], 1, 1, 1).to(ws.dtype)
            x = self.conv1(x, ws[:, 0], noise_mode)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode)
            x = self.conv1(x, ws[:, 1], noise_mode)
        y = self.torgb(x, ws[:, self.num_conv])
        img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """W+ (N, num_ws, w_dim) -> image (N, C, R, R) in about -1..1."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.resolutions = [2**i for i in range(2, int(math.log2(config.resolution)) + 1)]
        self.num_ws = config.num_ws
        for res in self.resolutions:
            in_ch = 0 if res == 4 else config.channels(res // 2)
            block = SynthesisBlock(
                in_ch, config.channels(res), config.w_dim, res, config.img_channels, config.conv_clamp
            )
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        """Synthesise images from W+ latents."""
        x = img = None
        w_idx = 0
        for res in self.resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws[:, w_idx : w_idx + block.num_conv + 1], noise_mode)
            w_idx += block.num_conv
        return img


class Generator(nn.Module):
    """Mapping + synthesis."""

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config or GeneratorConfig()
        self.mapping = MappingNetwork(
            self.config.z_dim,
            self.config.w_dim,
            self.config.num_ws,
            self.config.mapping_layers,
            lr_mul=self.config.mapping_lr_mul,
        )
        self.synthesis = SynthesisNetwork(self.config)

    def forward(
        self,
        z: torch.Tensor,
        truncation_psi: float = 1.0,
        noise_mode: str = "random",
        update_w_avg: bool = False,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """z (N, z_dim) -> images (N, C, R, R)."""
        ws = self.mapping(z, truncation_psi, update_w_avg, truncation_cutoff)
        return self.synthesis(ws, noise_mode)


class DiscriminatorBlock(nn.Module):
    """Residual block: two 3x3 convs (the second halves the resolution) plus a 1x1 down-sampled skip."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=0)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.register_buffer("resample_filter", _fir_kernel())
        for conv in (self.conv0, self.conv1, self.skip):
            nn.init.normal_(conv.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        self.gains = (
            1 / math.sqrt(in_channels * 9),
            1 / math.sqrt(in_channels * 9),
            1 / math.sqrt(in_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, Cin, H, W) -> (N, Cout, H/2, W/2)."""
        f = self.resample_filter
        skip = F.conv2d(downsample2d(x, f), self.skip.weight * self.gains[2])
        x = (
            F.leaky_relu(F.conv2d(x, self.conv0.weight * self.gains[0], self.conv0.bias, padding=1), 0.2)
            * SQRT2
        )
        # Blur then stride-2 valid conv: the anti-aliased down-sampling of the official code.
        x = _fir(x, f, (2, 2, 2, 2))
        x = F.conv2d(x, self.conv1.weight * self.gains[1], self.conv1.bias, stride=2)
        x = F.leaky_relu(x, 0.2) * SQRT2
        return (skip + x) / SQRT2


class Discriminator(nn.Module):
    """image (N, C, R, R) -> realness logit (N, 1). Residual blocks down to 4x4, minibatch stddev, fc."""

    def __init__(
        self,
        resolution: int = 256,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        mbstd_group: int = 4,
    ) -> None:
        super().__init__()
        ch = lambda res: min(channel_base // res, channel_max)  # noqa: E731
        self.resolution = resolution
        self.mbstd_group = mbstd_group
        self.fromrgb = nn.Conv2d(img_channels, ch(resolution), 1)
        blocks = []
        res = resolution
        while res > 4:
            blocks.append(DiscriminatorBlock(ch(res), ch(res // 2)))
            res //= 2
        self.blocks = nn.ModuleList(blocks)
        self.conv = nn.Conv2d(ch(4) + 1, ch(4), 3, padding=1)
        self.fc = nn.Linear(ch(4) * 16, ch(4))
        self.out = nn.Linear(ch(4), 1)

    def features(self, img: torch.Tensor) -> list[torch.Tensor]:
        """Activations after each block (also usable as perceptual features)."""
        x = F.leaky_relu(self.fromrgb(img), 0.2) * SQRT2
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """Realness logits."""
        x = self.features(img)[-1]
        n, c, h, w = x.shape
        g = min(self.mbstd_group, n)
        if n % g:
            g = 1
        y = x.reshape(g, -1, c, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt().mean(dim=(1, 2, 3))
        y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
        x = torch.cat([x, y], dim=1)
        x = F.leaky_relu(self.conv(x), 0.2) * SQRT2
        x = F.leaky_relu(self.fc(x.flatten(1)), 0.2) * SQRT2
        return self.out(x)


def loss_generator(d_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating logistic loss of the generator."""
    return F.softplus(-d_fake).mean()


def loss_discriminator(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Logistic loss of the discriminator."""
    return F.softplus(d_fake).mean() + F.softplus(-d_real).mean()


def r1_penalty(discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """R1: mean squared gradient norm of D at real images (multiply by gamma/2). ``discriminator`` may
    include the augmentation, as in StyleGAN2-ADA (the gradient is taken at the un-augmented image)."""
    real = real.detach().requires_grad_(True)
    logits = discriminator(real)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return grad.square().sum(dim=(1, 2, 3)).mean()


def path_length_penalty(
    generator: Generator, z: torch.Tensor, pl_mean: torch.Tensor, decay: float = 0.01
) -> tuple[torch.Tensor, torch.Tensor]:
    """StyleGAN2's path-length regulariser: the length of J_w^T y for image-space noise y (scaled by
    1/sqrt(pixels)) is pulled towards its running mean, so a fixed step in W changes the image by a fixed
    amount. Returns (penalty, new running mean); multiply the penalty by pl_weight (2) and the interval."""
    ws = generator.mapping(z)
    images = generator.synthesis(ws)
    noise = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
    (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
    lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()
    mean = pl_mean.lerp(lengths.mean(), decay)
    return (lengths - mean).square().mean(), mean.detach()
