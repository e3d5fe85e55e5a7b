"""Device and precision choice, memory-saving switches and peak-memory measurement."""

from __future__ import annotations

import re
from typing import Any

from ...protocol import AvatarTexError, ErrorCode
from .config import NeuralConfig

DEVICE_FORMS = "auto, cpu, cuda, cuda:N or mps"
"""The devices a person may ask for (``--device``, ``AVATARTEX_DEVICE``), as the help names them."""

_DEVICE = re.compile(r"(auto|cpu|mps|cuda(:[0-9]+)?)?")


def check_device(preference: str) -> str:
    """``preference`` when it is one of ``DEVICE_FORMS`` (or empty: auto), else a typed
    ``bad_request`` listing them: checked before any work and without importing torch, whose own
    error lists its internal device types (ipu, xla, lazy...), none of which this engine runs on."""
    if not _DEVICE.fullmatch(preference):
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST,
            f"Unknown device {preference!r}: use {DEVICE_FORMS}.",
            "auto takes a GPU when there is one; cuda:N is the Nth NVIDIA GPU (from 0), mps an Apple "
            "silicon GPU, cpu the processor (minutes per texture).",
        )
    return preference


def pick_device(preference: str = "auto") -> Any:
    """The torch device to run on: ``auto`` prefers CUDA, then Apple MPS, then the CPU."""
    check_device(preference)
    import torch

    if preference in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preference)
    except RuntimeError as exc:
        raise AvatarTexError(
            ErrorCode.ENGINE_UNAVAILABLE,
            f"Unknown device {preference!r}: {exc}.",
            f"Use {DEVICE_FORMS}.",
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AvatarTexError(
            ErrorCode.ENGINE_UNAVAILABLE,
            "CUDA was asked for but torch sees no CUDA device.",
            "Install a CUDA build of torch and an NVIDIA driver, or choose device cpu.",
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise AvatarTexError(
            ErrorCode.ENGINE_UNAVAILABLE,
            "MPS was asked for but is not available.",
            "Use a Mac with Apple silicon and torch >= 2, or choose device cpu.",
        )
    return device


def pick_dtype(device: Any, preference: str = "auto") -> Any:
    """The compute dtype: fp16 on GPUs (bf16 on request), fp32 on the CPU, where half is slow."""
    import torch

    table = {
        "fp16": torch.float16,
        "float16": torch.float16,
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp32": torch.float32,
        "float32": torch.float32,
    }
    if preference in ("", "auto"):
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    if preference not in table:
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST, f"Unknown dtype {preference!r}.", "Use auto, fp16, bf16 or fp32."
        )
    return table[preference]


def configure_pipeline(pipe: Any, config: NeuralConfig, device: Any) -> Any:
    """Move a diffusers pipeline to the device, or set up CPU offload and slicing for small cards."""
    if config.low_vram and device.type == "cuda":
        # Offload keeps only the sub-model that is running on the GPU: 6-8 GB cards fit SD 1.5 + ControlNet.
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if config.attention_slicing or config.low_vram:
        pipe.enable_attention_slicing()
    if config.vae_tiling or config.low_vram:
        pipe.vae.enable_tiling()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def reset_peak_memory(device: Any) -> None:
    """Start a new peak-memory measurement (CUDA only; a no-op elsewhere)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gb(device: Any) -> float:
    """Peak allocated device memory since the last reset, in GB (CUDA); process peak RSS on the CPU."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 1e9
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux
