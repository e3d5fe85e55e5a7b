"""Training a StyleGAN2 prior in atlas space from a folder of atlas textures.

Resumable: every ``checkpoint_every`` steps the generator, discriminator, their EMA copy, both Adam
states and the step counter go to ``OUT/checkpoint.safetensors`` (written atomically); starting again
with the same ``OUT`` continues from it. ``OUT/prior.safetensors`` (the EMA generator, what stage 2
loads) and ``OUT/preview.png`` (a grid of samples from fixed latents) are refreshed with it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from avatartex.engines.neural.prior import save_prior
from avatartex.engines.neural.stylegan2 import (
    Discriminator,
    Generator,
    GeneratorConfig,
    loss_discriminator,
    loss_generator,
    r1_penalty,
)
from avatartex.protocol import AvatarTexError, ErrorCode

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")


@dataclass
class TrainConfig:
    """Hyper-parameters of ``train``; the defaults are StyleGAN2-ADA's for small datasets at 256 px."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    batch: int = 8
    steps: int = 20000
    """Total optimiser steps (resuming continues up to this number)."""
    lr: float = 0.0025
    r1_gamma: float = 1.0
    r1_interval: int = 16
    """Lazy R1 regularisation: every this many steps, scaled by the interval."""
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
    r1_ratio = config.r1_interval / (config.r1_interval + 1)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr, betas=(0.0, 0.99), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr * r1_ratio, betas=(0.0, 0.99**r1_ratio), eps=1e-8)
    checkpoint = out / "checkpoint.safetensors"
    step = 0
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
            loss_g = loss_generator(D(G(z, update_w_avg=True)))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            # Discriminator step (+ lazy R1).
            G.requires_grad_(False)
            D.requires_grad_(True)
            with torch.no_grad():
                fake = G(z)
            loss_d = loss_discriminator(D(real), D(fake))
            total_d = loss_d
            if config.r1_gamma > 0 and step % config.r1_interval == 0:
                total_d = total_d + r1_penalty(D, real) * (config.r1_gamma / 2) * config.r1_interval
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
                    f"step {step}/{config.steps} G {losses_g[-1]:.3f} D {losses_d[-1]:.3f}",
                )
            if step % config.checkpoint_every == 0:
                save()
    finally:
        if step > resumed_from or not (out / "prior.safetensors").is_file():
            save()
    return TrainResult(
        step, resumed_from, losses_g, losses_d, out / "prior.safetensors", out / "preview.png", G.eval()
    )


def heads_to_textures(folder: str | Path, resolution: int, out_folder: str | Path) -> Path:
    """Convert textured head meshes to atlas textures (for ``--heads``), see
    ``pipeline.atlas_from_textured_mesh``."""
    from .prepare import atlas_from_textured_mesh

    return Path(atlas_from_textured_mesh(folder, resolution, out_folder))
