"""Training a StyleGAN2 prior in atlas space from a folder of atlas textures.

The recipe is StyleGAN2-ADA's, scaled down to small batches: the non-saturating logistic loss, lazy R1
(gamma 1, every 16 steps), lazy path-length regularisation (weight 2, every 4 steps, on half the
batch), Adam (lr 0.0025, betas (0, 0.99), lr and betas adjusted for the lazy intervals), an EMA copy
of the generator, and adaptive discriminator augmentation (``AdaptiveAugment``: the "bgc" pipeline of
pixel blitting, general geometric and colour transforms, its probability p tuned so that
r_t = E[sign(D(real))] stays near 0.6). What differs from the official code, on purpose or for size:
batch 8 rather than 32-64, the EMA half-life in images rather than the official ramp, no style mixing,
no fp16, the discriminator is this project's own (not the official names), geometric augmentation
resamples bilinearly (the official pipeline oversamples 2x with a wavelet filter to avoid aliasing),
and p moves at 100k images per unit (official: 500k) because these runs see ~100k-200k images in all.

Resumable: every ``checkpoint_every`` steps the generator, discriminator, their EMA copy, both Adam
states and the step counter go to ``OUT/checkpoint.safetensors`` (written atomically); starting again
with the same ``OUT`` continues from it. ``OUT/prior.safetensors`` (the EMA generator, what stage 2
loads) and ``OUT/preview.png`` (a grid of samples from fixed latents) are refreshed with it.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from avatartex.engines.neural.prior import save_prior
from avatartex.engines.neural.stylegan2 import (
    Discriminator,
    Generator,
    GeneratorConfig,
    loss_discriminator,
    loss_generator,
    path_length_penalty,
    r1_penalty,
)
from avatartex.protocol import AvatarTexError, ErrorCode

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")


@dataclass
class TrainConfig:
    """Hyper-parameters of ``train``: StyleGAN2-ADA's losses, regularisers and augmentation at a small
    batch (see the module docstring for what differs from the official configurations)."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    batch: int = 8
    steps: int = 20000
    """Total optimiser steps (resuming continues up to this number)."""
    lr: float = 0.0025
    r1_gamma: float = 1.0
    r1_interval: int = 16
    """Lazy R1 regularisation: every this many steps, scaled by the interval."""
    pl_weight: float = 2.0
    """Path-length regularisation weight (0 = off)."""
    pl_interval: int = 4
    pl_batch_shrink: int = 2
    augment: bool = True
    """Adaptive discriminator augmentation (ADA)."""
    ada_target: float = 0.6
    ada_interval: int = 4
    ada_images: int = 100_000
    """Images over which p may move by 1 (official: 500k; these runs are shorter)."""
    ema_half_life_images: int = 10000
    checkpoint_every: int = 500
    preview_count: int = 16
    seed: int = 0
    mirror: bool = True
    """Random left/right flips: the atlas is mirror-symmetric about the face's plane."""
    device: str = "auto"


def load_textures(folder: str | Path, resolution: int) -> torch.Tensor:
    """All images of a folder as (N, 3, R, R) float32 in -1..1 (resampled to the prior's resolution)."""
    from PIL import Image

    files = sorted(p for p in Path(folder).expanduser().iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST,
            f"No images ({', '.join(IMAGE_SUFFIXES)}) in {folder}.",
            "Point --textures at a folder of head-atlas textures.",
        )
    images = []
    for path in files:
        with Image.open(path) as im:
            im = im.convert("RGB").resize((resolution, resolution), Image.Resampling.LANCZOS)
            images.append(np.asarray(im, np.float32) / 127.5 - 1.0)
    return torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).copy())


def preview_grid(generator: Generator, z: torch.Tensor, path: Path) -> Path:
    """Save a square-ish grid of samples from the latents ``z`` as a PNG."""
    from PIL import Image

    with torch.no_grad():
        images = generator(z, noise_mode="const").clamp(-1, 1).add(1).mul(127.5).round().byte().cpu().numpy()
    n, c, h, w = images.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.zeros((rows * h, cols * w, c), np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        grid[r * h : (r + 1) * h, k * w : (k + 1) * w] = images[i].transpose(1, 2, 0)
    tmp = path.with_name(path.name + ".tmp.png")
    Image.fromarray(grid).save(tmp)
    tmp.replace(path)
    return path


def _matrix(rows: list[list[torch.Tensor | float]], n: int) -> torch.Tensor:
    """(n, R, C) batch of matrices from rows of per-sample tensors (n,) or constants."""
    return torch.stack(
        [
            torch.stack([e if isinstance(e, torch.Tensor) else torch.full((n,), float(e)) for e in r], -1)
            for r in rows
        ],
        -2,
    )


def warp(images: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Resample (N, C, H, W) through (N, 3, 3) inverse transforms in centred pixel coordinates, with
    reflection at the borders; whole-pixel flips, quarter turns and shifts come out exact."""
    n, _, h, w = images.shape
    # Centred pixel coordinates -> affine_grid's normalised ones (align_corners=False).
    to_unit = torch.diag(torch.tensor([2.0 / w, 2.0 / h, 1.0]))
    theta = (to_unit @ g @ torch.linalg.inv(to_unit))[:, :2].to(images)
    grid = F.affine_grid(theta, [n, images.shape[1], h, w], align_corners=False)
    return _Resample.apply(images, grid)


_BILINEAR, _REFLECTION = 0, 2
"""``grid_sampler_2d``'s codes of the interpolation and padding modes ``warp`` uses."""


class _Resample(torch.autograd.Function):
    """``F.grid_sample`` (bilinear, reflection) through a fixed grid, differentiable any number of
    times in the images. R1 through the augmentation needs the gradient of the gradient, and torch
    before 2.13 has no derivative of ``grid_sampler_2d_backward`` (StyleGAN2-ADA's
    ``grid_sample_gradfix`` answers the same): resampling is linear in the images, so its backward
    is its transpose and the transpose's backward is the resampling again."""

    @staticmethod
    def forward(ctx, images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(grid)
        ctx.image_shape = images.shape
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (grid,) = ctx.saved_tensors
        return _ResampleTransposed.apply(grad, grid, ctx.image_shape), None


class _ResampleTransposed(torch.autograd.Function):
    """The transpose of ``_Resample``: spreads values on the grid back onto the images' pixels."""

    @staticmethod
    def forward(ctx, grad: torch.Tensor, grid: torch.Tensor, image_shape: torch.Size) -> torch.Tensor:
        ctx.save_for_backward(grid)
        shaped = grad.new_zeros(image_shape)  # only its shape is read
        out, _ = torch.ops.aten.grid_sampler_2d_backward(
            grad, shaped, grid, _BILINEAR, _REFLECTION, False, [True, False]
        )
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (grid,) = ctx.saved_tensors
        return _Resample.apply(grad, grid), None, None


class AdaptiveAugment:
    """StyleGAN2-ADA's augmentation (Karras et al. 2020, "Training GANs with limited data"), the "bgc"
    set: pixel blitting (x-flip, 90-degree rotations, integer translation), general geometric transforms
    (isotropic scaling, rotation, anisotropic scaling, fractional translation) and colour transforms
    (brightness, contrast, luma flip, hue rotation, saturation), each applied with probability ``p``.

    ``p`` is adjusted from the overfitting heuristic r_t = E[sign(D(real))]: every ``interval`` steps it
    moves by batch * interval / ``speed_images`` up when r_t > ``target``, down otherwise. Applied to
    every image the discriminator sees (real and generated), so the generator never learns the
    augmentations as long as p stays below ~0.8 (the paper's non-leaking range)."""

    def __init__(
        self,
        target: float = 0.6,
        interval: int = 4,
        speed_images: int = 100_000,
        p: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.p = float(p)
        self.target = target
        self.interval = interval
        self.speed_images = speed_images
        self._signs: list[float] = []
        self._images = 0
        self._rng = torch.Generator().manual_seed(seed)

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=self._rng)

    def _randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=self._rng)

    def _gate(self, value: torch.Tensor, neutral: float, p: float | None = None) -> torch.Tensor:
        """``value`` where a coin with probability p (default ``self.p``) lands, ``neutral`` elsewhere."""
        keep = self._rand(value.shape[0]) < (self.p if p is None else p)
        return torch.where(keep, value, torch.full_like(value, neutral))

    def geometric(self, n: int, height: int, width: int) -> torch.Tensor:
        """(n, 3, 3) inverse transforms (output pixel -> input pixel, origin at the image centre)."""
        one, zero = torch.ones(n), torch.zeros(n)
        g = torch.eye(3).repeat(n, 1, 1)

        def scale(sx, sy):
            return _matrix([[sx, zero, zero], [zero, sy, zero], [zero, zero, one]], n)

        def rotate(theta):
            c, s = torch.cos(theta), torch.sin(theta)
            return _matrix([[c, -s, zero], [s, c, zero], [zero, zero, one]], n)

        def translate(tx, ty):
            return _matrix([[one, zero, tx], [zero, one, ty], [zero, zero, one]], n)

        flip = self._gate(torch.floor(self._rand(n) * 2), 0.0)
        g = g @ scale(1 - 2 * flip, one)
        quarter = self._gate(torch.floor(self._rand(n) * 4), 0.0)
        g = g @ rotate(-math.pi / 2 * quarter)
        t = (self._rand(n, 2) * 2 - 1) * 0.125
        t = torch.where((self._rand(n) < self.p)[:, None], t, torch.zeros_like(t))
        g = g @ translate(-torch.round(t[:, 0] * width), -torch.round(t[:, 1] * height))
        s = self._gate(torch.exp2(self._randn(n) * 0.2), 1.0)
        g = g @ scale(1 / s, 1 / s)
        p_rot = 1 - math.sqrt(max(1 - self.p, 0.0))  # pre- or post-rotation: p in all
        g = g @ rotate(self._gate((self._rand(n) * 2 - 1) * math.pi, 0.0, p_rot))
        s = self._gate(torch.exp2(self._randn(n) * 0.2), 1.0)
        g = g @ scale(1 / s, s)
        g = g @ rotate(self._gate((self._rand(n) * 2 - 1) * math.pi, 0.0, p_rot))
        t = self._randn(n, 2) * 0.125
        t = torch.where((self._rand(n) < self.p)[:, None], t, torch.zeros_like(t))
        return g @ translate(-t[:, 0] * width, -t[:, 1] * height)

    def colour(self, n: int) -> torch.Tensor:
        """(n, 4, 4) homogeneous colour transforms (colour_out = C @ colour_in)."""
        v = torch.tensor([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3)  # luma axis
        vv = torch.outer(v, v)
        eye = torch.eye(4)
        c = eye.repeat(n, 1, 1)
        b = self._gate(self._randn(n) * 0.2, 0.0)
        brightness = eye.repeat(n, 1, 1)
        brightness[:, :3, 3] = b[:, None]
        c = brightness @ c
        k = self._gate(torch.exp2(self._randn(n) * 0.5), 1.0)
        c = torch.diag_embed(torch.stack([k, k, k, torch.ones(n)], -1)) @ c
        flip = self._gate(torch.floor(self._rand(n) * 2), 0.0)
        c = (eye - 2 * vv * flip[:, None, None]) @ c
        theta = self._gate((self._rand(n) * 2 - 1) * math.pi, 0.0)
        axis = v[:3]
        cross = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        rot = eye.repeat(n, 1, 1)
        cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
        rot[:, :3, :3] = cos * torch.eye(3) + sin * cross + (1 - cos) * torch.outer(axis, axis)
        c = rot @ c
        s = self._gate(torch.exp2(self._randn(n) * 1.0), 1.0)
        return (vv + (eye - vv) * s[:, None, None]) @ c

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Augment a batch (N, 3, H, W) in -1..1; the identity while p = 0."""
        if self.p <= 0:
            return images
        n, _, h, w = images.shape
        images = warp(images, self.geometric(n, h, w))
        c = self.colour(n).to(images)
        return torch.einsum("nij,njhw->nihw", c[:, :3, :3], images) + c[:, :3, 3, None, None]

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Record the discriminator's outputs on (augmented) real images."""
        self._signs.append(float(real_logits.detach().sign().mean()))
        self._images += real_logits.shape[0]

    def adjust(self) -> float:
        """Every ``interval`` calls, move p towards r_t = target; returns r_t of the interval (or NaN)."""
        if len(self._signs) < self.interval:
            return float("nan")
        r_t = float(np.mean(self._signs))
        self.p = min(max(self.p + np.sign(r_t - self.target) * self._images / self.speed_images, 0.0), 1.0)
        self._signs, self._images = [], 0
        return r_t


def _optimizer_tensors(prefix: str, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            out[f"{prefix}.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    return out


def _load_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    state_dict = optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            index, name = key[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(index), {})[name] = value
    state_dict["state"] = state
    optimizer.load_state_dict(state_dict)


def _prefixed(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def _unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


@dataclass
class TrainResult:
    """What ``train`` did."""

    step: int
    resumed_from: int
    losses_g: list[float]
    losses_d: list[float]
    prior: Path
    preview: Path
    generator: Generator | None = None
    """The raw (non-EMA) generator at the end of this call."""
    augment_p: float = 0.0
    """ADA's augmentation probability at the end of this call."""


def train(
    textures: torch.Tensor,
    out_dir: str | Path,
    config: TrainConfig,
    *,
    max_steps: int | None = None,
    progress: Callable[[float, str], None] | None = None,
    check_cancel: Callable[[], None] | None = None,
) -> TrainResult:
    """Train (or resume) a prior on ``textures`` (N, 3, R, R in -1..1) into ``out_dir``.

    ``max_steps`` bounds the steps of this call (e.g. a time slice); a cancel saves a checkpoint first."""
    from avatartex.engines.neural.device import pick_device
    from safetensors.torch import load_file, save_file

    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(config.device)
    gcfg = config.generator
    if textures.shape[-1] != gcfg.resolution:
        raise AvatarTexError(
            ErrorCode.INVALID_SIZE,
            f"Textures are {textures.shape[-1]} px, the prior is {gcfg.resolution} px.",
            "Load them with load_textures(folder, resolution).",
        )
    torch.manual_seed(config.seed)
    G = Generator(gcfg).to(device)
    D = Discriminator(gcfg.resolution, gcfg.img_channels, gcfg.channel_base, gcfg.channel_max).to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    # Equalised learning rate means one lr fits all layers; betas (0, 0.99) as StyleGAN2.
    # Lazy regularisation: lr and beta2 scaled so that the regulariser's extra steps average out.
    r1_ratio = config.r1_interval / (config.r1_interval + 1)
    pl_ratio = config.pl_interval / (config.pl_interval + 1) if config.pl_weight > 0 else 1.0
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr * pl_ratio, betas=(0.0, 0.99**pl_ratio), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr * r1_ratio, betas=(0.0, 0.99**r1_ratio), eps=1e-8)
    checkpoint = out / "checkpoint.safetensors"
    step = 0
    ada = AdaptiveAugment(config.ada_target, config.ada_interval, config.ada_images, seed=config.seed)
    pl_mean = torch.zeros([], device=device)
    if checkpoint.is_file():
        from avatartex.engines.neural.prior import read_metadata

        meta = read_metadata(checkpoint)
        saved = json.loads(meta.get("generator", "{}"))
        if saved != gcfg.to_dict():
            raise AvatarTexError(
                ErrorCode.BAD_REQUEST,
                f"{checkpoint} was trained with a different architecture {saved}.",
                "Use the same --resolution/--channels, or another --out folder.",
            )
        tensors = load_file(str(checkpoint))
        G.load_state_dict(_unprefixed("G", tensors))
        D.load_state_dict(_unprefixed("D", tensors))
        G_ema.load_state_dict(_unprefixed("G_ema", tensors))
        _load_optimizer("opt_g", opt_g, tensors)
        _load_optimizer("opt_d", opt_d, tensors)
        step = int(meta["step"])
        ada.p = float(tensors["ada_p"]) if "ada_p" in tensors else 0.0  # older checkpoints lack both
        pl_mean = tensors["pl_mean"].to(device) if "pl_mean" in tensors else pl_mean
    resumed_from = step
    gen = torch.Generator().manual_seed(config.seed + step)  # a resumed run does not replay the same batches
    preview_z = torch.randn(
        config.preview_count, gcfg.z_dim, generator=torch.Generator().manual_seed(config.seed)
    )
    preview_z = preview_z.to(device)
    ema_beta = 0.5 ** (config.batch / max(config.ema_half_life_images, 1))
    textures = textures.to(device)
    losses_g: list[float] = []
    losses_d: list[float] = []

    def save() -> None:
        tensors = {
            **_prefixed("G", G),
            **_prefixed("D", D),
            **_prefixed("G_ema", G_ema),
            **_optimizer_tensors("opt_g", opt_g),
            **_optimizer_tensors("opt_d", opt_d),
            "ada_p": torch.tensor(ada.p),
            "pl_mean": pl_mean.detach().cpu().reshape([]),
        }
        meta = {
            "step": str(step),
            "generator": json.dumps(gcfg.to_dict()),
            "train": json.dumps({k: v for k, v in asdict(config).items() if k != "generator"}),
        }
        tmp = out / "checkpoint.safetensors.tmp"
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(checkpoint)
        save_prior(G_ema, out / "prior.safetensors", {"step": str(step)})
        preview_grid(G_ema, preview_z, out / "preview.png")

    end = config.steps if max_steps is None else min(config.steps, step + max_steps)

    def augment(images: torch.Tensor) -> torch.Tensor:
        return ada(images) if config.augment else images

    try:
        while step < end:
            if check_cancel is not None:
                check_cancel()
            idx = torch.randint(0, textures.shape[0], (config.batch,), generator=gen).to(device)
            real = textures[idx]
            if config.mirror:
                flip = (torch.rand(config.batch, generator=gen) < 0.5).to(device)
                real = torch.where(flip[:, None, None, None], real.flip(-1), real)
            z = torch.randn(config.batch, gcfg.z_dim, generator=gen).to(device)
            # Generator step.
            G.requires_grad_(True)
            D.requires_grad_(False)
            loss_g = loss_generator(D(augment(G(z, update_w_avg=True))))
            total_g = loss_g
            if config.pl_weight > 0 and step % config.pl_interval == 0:
                pl_batch = max(config.batch // config.pl_batch_shrink, 1)
                penalty, pl_mean = path_length_penalty(G, z[:pl_batch], pl_mean)
                total_g = total_g + penalty * config.pl_weight * config.pl_interval
            opt_g.zero_grad(set_to_none=True)
            total_g.backward()
            opt_g.step()
            # Discriminator step (+ lazy R1).
            G.requires_grad_(False)
            D.requires_grad_(True)
            with torch.no_grad():
                fake = G(z)
            real_logits = D(augment(real))
            loss_d = loss_discriminator(real_logits, D(augment(fake)))
            if config.augment:
                ada.accumulate(real_logits)
                ada.adjust()
            total_d = loss_d
            if config.r1_gamma > 0 and step % config.r1_interval == 0:
                r1 = r1_penalty(lambda images: D(augment(images)), real)
                total_d = total_d + r1 * (config.r1_gamma / 2) * config.r1_interval
            opt_d.zero_grad(set_to_none=True)
            total_d.backward()
            opt_d.step()
            with torch.no_grad():
                for p_ema, p in zip(G_ema.parameters(), G.parameters(), strict=True):
                    p_ema.lerp_(p, 1 - ema_beta)
                for b_ema, b in zip(G_ema.buffers(), G.buffers(), strict=True):
                    b_ema.copy_(b)
            step += 1
            losses_g.append(float(loss_g.detach()))
            losses_d.append(float(loss_d.detach()))
            if progress is not None:
                progress(
                    step / config.steps,
                    f"step {step}/{config.steps} G {losses_g[-1]:.3f} D {losses_d[-1]:.3f} ADA p {ada.p:.3f}",
                )
            if step % config.checkpoint_every == 0:
                save()
    finally:
        if step > resumed_from or not (out / "prior.safetensors").is_file():
            save()
    return TrainResult(
        step,
        resumed_from,
        losses_g,
        losses_d,
        out / "prior.safetensors",
        out / "preview.png",
        G.eval(),
        ada.p,
    )


def heads_to_textures(folder: str | Path, resolution: int, out_folder: str | Path) -> Path:
    """Convert textured head meshes to atlas textures (for ``--heads``), see
    ``pipeline.atlas_from_textured_mesh``."""
    from .prepare import atlas_from_textured_mesh

    return Path(atlas_from_textured_mesh(folder, resolution, out_folder))
