"""The neural engine: diffusion inpaint -> StyleGAN2 latent -> diffusion repaint (paper §2-3).

Importing this package is cheap (standard library only); torch, diffusers and transformers are
imported only where a device could use them, so ``hello`` and the classic engine never pay for them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import platform
import shutil
from pathlib import Path
from typing import Any

from ...protocol import AvatarTexError, ErrorCode
from .config import NeuralConfig

__all__ = [
    "NeuralConfig",
    "NeuralStatus",
    "StatusCode",
    "available",
    "build_stages",
    "devices",
    "prior_dir",
    "resolve_prior",
    "status",
]


class StatusCode:
    """``NeuralStatus.code``: why the neural engine can or cannot run, for programs (the Blender add-on
    turns each into what to do in Blender; ``reason`` says the same for a person at a terminal)."""

    OK = "ok"
    PACKAGES_MISSING = "packages_missing"
    """torch, diffusers or transformers is not installed in the backend's Python."""
    NO_GPU = "no_gpu"
    """Device ``auto`` and no NVIDIA driver nor Apple silicon: nothing torch could use."""
    CPU_ONLY = "cpu_only"
    """Device ``auto``, a GPU driver is there, but torch sees no CUDA or MPS (a CPU-only torch build)."""
    DEVICE_UNAVAILABLE = "device_unavailable"
    """The device asked for (``cuda``, ``mps``, ``cuda:N``) is not available or not a device name."""
    MODELS_MISSING = "models_missing"
    """A device is there but default models are not downloaded (``missing_models`` names them)."""


@dataclasses.dataclass
class NeuralStatus:
    """Whether the neural engine can run here, on which device, and what is missing."""

    ok: bool
    reason: str
    """In an artist's words: what was found, or what is missing and how to get it."""
    device: str = ""
    """``cuda``, ``mps`` or ``cpu`` when a device was chosen."""
    missing_models: list[str] = dataclasses.field(default_factory=list)
    """Registry names of default models not in the cache (``avatartex models download NAME``)."""
    code: str = StatusCode.OK
    """One of ``StatusCode``: the same as ``reason``, for a program to act on."""
    hint: str = ""
    """What to do, where the check that failed said it (a device asked for that torch cannot see)."""


def accelerator_hint() -> str:
    """A cheap guess of the GPU torch could use, without importing torch: ``cuda`` where an NVIDIA
    driver is installed, ``mps`` on Apple silicon, else ''. Importing torch costs seconds, which every
    backend start would pay on the many machines that have no GPU at all."""
    if Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None:
        return "cuda"
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return "mps"
    return ""


def status(config: NeuralConfig | None = None) -> NeuralStatus:
    """Where the neural engine would run and whether its default weights are in the cache.

    ``config.device`` ``auto`` takes CUDA, then Apple MPS, as torch reports them; an explicit device
    (``cpu`` included, from ``AVATARTEX_DEVICE`` or ``--device``) is used as asked, however slow.
    """
    config = config or NeuralConfig()
    for package in ("torch", "diffusers", "transformers"):
        if importlib.util.find_spec(package) is None:
            return NeuralStatus(
                False,
                f"the neural packages are not installed ({package}); see backend/requirements-neural.txt",
                code=StatusCode.PACKAGES_MISSING,
            )
    explicit = config.device not in ("", "auto")
    if not explicit and not accelerator_hint():
        return NeuralStatus(
            False,
            "no GPU torch can use (no NVIDIA driver, not Apple silicon); choose the neural engine and "
            "device cpu to run it on the processor (minutes per texture)",
            code=StatusCode.NO_GPU,
        )
    from .device import pick_device

    try:
        device = pick_device(config.device)
    except AvatarTexError as exc:
        return NeuralStatus(False, exc.message, code=StatusCode.DEVICE_UNAVAILABLE, hint=exc.hint)
    if device.type == "cpu" and not explicit:
        return NeuralStatus(
            False,
            "torch sees no CUDA or MPS device; choose device cpu to run it there (slow)",
            code=StatusCode.CPU_ONLY,
        )
    from .hub import find_cached
    from .registry import REGISTRY

    missing = [
        name
        for name in (config.inpaint_model, config.repaint_model, config.controlnet_model)
        if name in REGISTRY and find_cached(REGISTRY[name], config.cache_dir) is None
    ]
    if missing:
        return NeuralStatus(
            False,
            f"model(s) {', '.join(missing)} not downloaded (avatartex models download {' '.join(missing)})",
            device.type,
            missing,
            code=StatusCode.MODELS_MISSING,
        )
    return NeuralStatus(True, f"{_device_name(device)} and the default models are present", device.type)


def _device_name(device: Any) -> str:
    if device.type == "cuda":
        import torch

        return f"CUDA device {torch.cuda.get_device_name(device)}"
    return {"mps": "Apple GPU (MPS)", "cpu": "the CPU (slow: minutes per texture)"}.get(
        device.type, str(device)
    )


def devices() -> list[str]:
    """The devices the neural engine could use here, for ``hello``: always ``cpu``, then the GPUs
    torch sees (torch is only imported where ``accelerator_hint`` finds one)."""
    found = ["cpu"]
    hint = accelerator_hint()
    if not hint or importlib.util.find_spec("torch") is None:
        return found
    import torch

    if hint == "cuda":
        found += [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    elif torch.backends.mps.is_available():
        found.append("mps Apple GPU")
    return found


def available(config: NeuralConfig | None = None) -> tuple[bool, str]:
    """(ok, reason): whether the neural engine can run here; the reason says what is missing."""
    found = status(config)
    return found.ok, found.reason


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


def build_stages(style: Any, config: NeuralConfig | None = None) -> list[tuple[Any, str]]:
    """The three stages for ``style`` with the reason each engine runs: neural inpaint and repaint,
    and stage 2 neural where a StyleGAN2 prior is installed, the classic stage 2 where none is.

    The config's ``prior`` wins over the style's; a prior the config names but that does not exist is
    an error (the artist asked for it), a style's prior that is not installed is not (none ship)."""
    from ..classic.latent import ClassicLatent
    from .inpaint import NeuralInpaint
    from .latent import NeuralLatent
    from .repaint import NeuralRepaint

    config = config or NeuralConfig()
    if config.prior:
        prior = resolve_prior(config.prior)
        if not prior:
            raise AvatarTexError(
                ErrorCode.MODEL_MISSING,
                f"GAN prior {config.prior!r} was not found.",
                f"Give a .safetensors path or put NAME.safetensors in {prior_dir()}.",
            )
        latent = (NeuralLatent(dataclasses.replace(config, prior=prior)), f"prior {Path(prior).name}")
    else:
        style_prior = getattr(style, "prior", None) or ""
        prior = resolve_prior(style_prior)
        if prior:
            latent = (
                NeuralLatent(dataclasses.replace(config, prior=prior)),
                f"prior {style_prior!r} of style {getattr(style, 'name', '')!r}",
            )
        elif style_prior:
            latent = (
                ClassicLatent(),
                f"no prior installed for style {getattr(style, 'name', '')!r} (looked for "
                f"{prior_dir() / (style_prior + '.safetensors')}; train one with avatartex-tools "
                "train-prior or convert one with avatartex-tools convert-prior)",
            )
        else:
            latent = (ClassicLatent(), "no GAN prior configured")
    models = f"{config.inpaint_model}"
    return [
        (NeuralInpaint(config), f"diffusion inpainting ({models})"),
        latent,
        (NeuralRepaint(config), f"tile ControlNet repaint ({config.controlnet_model})"),
    ]
