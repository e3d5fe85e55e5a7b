"""The neural engine: diffusion inpaint -> StyleGAN2 latent -> diffusion repaint (paper §2-3).

Importing this package is cheap (standard library only); torch, diffusers and transformers are
imported by the functions that need them, so ``hello`` can ask ``available()`` without loading them.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from .config import NeuralConfig

__all__ = ["NeuralConfig", "available", "build_stages", "nvidia_driver_present", "prior_dir", "resolve_prior"]


def available(config: NeuralConfig | None = None) -> tuple[bool, str]:
    """Whether ``engine=auto`` should pick the neural engine: a CUDA device and the default weights in
    the Hugging Face cache. Returns (ok, reason); the reason says what is missing.

    Without an NVIDIA driver on the machine nothing is imported: torch, diffusers and transformers
    take seconds to import, which every backend start (and Blender's first click) would pay.
    """
    if not nvidia_driver_present():
        return False, "no NVIDIA driver found (the neural engine needs an NVIDIA GPU for interactive use)"
    try:
        import diffusers  # noqa: F401
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        return (
            False,
            f"the neural packages are not installed ({exc.name}); see backend/requirements-neural.txt",
        )
    if not torch.cuda.is_available():
        return False, "no CUDA device (the neural engine needs an NVIDIA GPU for interactive use)"
    from .hub import find_cached
    from .registry import REGISTRY

    config = config or NeuralConfig()
    missing = [
        name
        for name in (config.inpaint_model, config.repaint_model, config.controlnet_model)
        if name in REGISTRY and find_cached(REGISTRY[name], config.cache_dir) is None
    ]
    if missing:
        return False, (
            f"model(s) {', '.join(missing)} not downloaded (avatartex models download {' '.join(missing)})"
        )
    return True, f"CUDA device {torch.cuda.get_device_name(0)} and the default models are present"


def nvidia_driver_present() -> bool:
    """Whether an NVIDIA driver is installed: the Linux kernel module's version file or nvidia-smi."""
    import shutil

    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def prior_dir() -> Path:
    """Folder where named priors live: ``AVATARTEX_PRIORS``, else ~/.cache/avatartex/priors."""
    env = os.environ.get("AVATARTEX_PRIORS")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "avatartex" / "priors"


def resolve_prior(name: str) -> str:
    """A prior setting (a path, or a name looked up as ``prior_dir()/NAME.safetensors``) -> a path or ''."""
    if not name:
        return ""
    path = Path(name).expanduser()
    if path.is_file():
        return str(path)
    named = prior_dir() / f"{name}.safetensors"
    return str(named) if named.is_file() else ""


def build_stages(style: Any, config: NeuralConfig | None = None) -> list[Any]:
    """The three neural stages for ``style``: inpaint, latent (classic fallback without a prior), repaint.

    The style's ``prior`` is used when the config names none; a style prior that is not installed
    leaves stage 2 on the classic fallback (the stage's report warning says so)."""
    from ..stages.neural_inpaint import NeuralInpaint
    from ..stages.neural_latent import NeuralLatent
    from ..stages.neural_repaint import NeuralRepaint

    config = config or NeuralConfig()
    prior = (
        resolve_prior(config.prior) if config.prior else resolve_prior(getattr(style, "prior", None) or "")
    )
    if config.prior and not prior:
        from ..protocol import AvatarTexError, ErrorCode

        raise AvatarTexError(
            ErrorCode.MODEL_MISSING,
            f"GAN prior {config.prior!r} was not found.",
            f"Give a .safetensors path or put NAME.safetensors in {prior_dir()}.",
        )
    latent_config = dataclasses.replace(config, prior=prior)
    style_prior = getattr(style, "prior", None) or ""
    missing = str(prior_dir() / f"{style_prior}.safetensors") if style_prior and not prior else ""
    return [NeuralInpaint(config), NeuralLatent(latent_config, missing_prior=missing), NeuralRepaint(config)]
