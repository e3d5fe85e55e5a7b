"""Loading diffusers pipelines from registry names or local folders, cached between requests.

Loading SD 1.5 takes seconds and gigabytes; the server keeps each pipeline after its first use, keyed
by everything that changes what was loaded (folders, device, dtype, memory mode).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from ...protocol import AvatarTexError, ErrorCode
from . import hub
from .config import NeuralConfig
from .device import configure_pipeline, pick_device, pick_dtype
from .registry import REGISTRY

_CACHE: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def clear_cache() -> None:
    """Drop every cached pipeline (and free GPU memory); the next request loads again."""
    with _LOCK:
        _CACHE.clear()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def cached_count() -> int:
    """How many pipelines are loaded (for ``hello`` and tests)."""
    return len(_CACHE)


def native_size(name_or_path: str, folder: Path) -> int:
    """The edge the model was trained at: the registry's, else the UNet config's sample size x VAE factor."""
    if name_or_path in REGISTRY:
        return REGISTRY[name_or_path].native_size
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text())
        vae = json.loads((folder / "vae" / "config.json").read_text())
        return int(unet.get("sample_size", 64)) * 2 ** (len(vae.get("block_out_channels", [0] * 4)) - 1)
    except (OSError, ValueError):
        return 512


def _pipeline_class_name(folder: Path) -> str:
    try:
        return str(json.loads((folder / "model_index.json").read_text()).get("_class_name", ""))
    except (OSError, ValueError) as exc:
        raise AvatarTexError(
            ErrorCode.MODEL_MISSING,
            f"{folder} is not a diffusers pipeline folder: {exc}.",
            "Point the model setting at a folder with model_index.json, or at a "
            "registry name (avatartex models list).",
        ) from None


INPAINT_CHANNELS = 9
"""An inpainting UNet's input: the noisy latent, the masked image's latent and the mask (4 + 4 + 1);
an img2img one's is the latent alone (4)."""


def _check_kind(folder: Path, inpaint: bool) -> None:
    """Refuse a model of the wrong kind before loading it: an SD base given as the inpainting model
    ran silently, the report still saying diffusion inpainting; an inpainting model given as the
    repaint's base failed deep in torch ("expected input ... to have 9 channels")."""
    try:
        channels = int(json.loads((folder / "unet" / "config.json").read_text()).get("in_channels", 4))
    except (OSError, ValueError, TypeError):
        return  # no readable UNet config: diffusers says what is missing when it loads
    if (channels == INPAINT_CHANNELS) != inpaint:
        want = "an inpainting model (9 channels)" if inpaint else "an img2img model (4 channels)"
        raise AvatarTexError(
            ErrorCode.MODEL_MISSING,
            f"{folder} is not {want}: its UNet takes {channels} channels.",
            "Point the inpaint model at an inpainting checkpoint and the repaint base at a plain one "
            "(avatartex models list names both).",
        )


def _common_kwargs(dtype: Any) -> dict[str, Any]:
    # use_safetensors=True makes diffusers refuse pickled .bin weights instead of silently loading them.
    import diffusers

    major, minor = (int(x) for x in diffusers.__version__.split(".")[:2])
    dtype_key = "dtype" if (major, minor) >= (0, 42) else "torch_dtype"  # renamed in 0.42
    return {dtype_key: dtype, "use_safetensors": True, "local_files_only": True}


def quiet_libraries() -> None:
    """Where the command line keeps library output off the terminal (``console.QUIET_ENV``:
    ``HF_HUB_DISABLE_PROGRESS_BARS``), diffusers' progress bars too: unlike transformers', they do
    not read that variable, and drew ``Loading pipeline components…`` into the progress line."""
    if hub.env_flag("HF_HUB_DISABLE_PROGRESS_BARS"):
        import diffusers.utils.logging

        diffusers.utils.logging.disable_progress_bar()


def _load(key: tuple, config: NeuralConfig, build: Any, names: str = "") -> Any:
    """The pipeline ``build`` makes, kept between requests; a model whose files cannot be read (a
    folder missing a part, a file damaged after the cache check) is a typed error naming it."""
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    quiet_libraries()
    try:
        pipe = build()
    except (OSError, ValueError, OverflowError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AvatarTexError(
            ErrorCode.MODEL_MISSING,
            f"The neural engine's model {names or key[1]} could not be loaded: {first[:300]}",
            "Download it again (`avatartex models download NAME`: a copy cut short or damaged), or point "
            "the model setting at a complete diffusers folder; the classic engine needs no model.",
        ) from exc
    if config.keep_models_loaded:
        with _LOCK:
            _CACHE[key] = pipe
    return pipe


def _memory_key(config: NeuralConfig) -> tuple:
    return (config.low_vram, config.attention_slicing, config.vae_tiling)


def load_inpaint(name_or_path: str, config: NeuralConfig) -> tuple[Any, int]:
    """The inpainting pipeline (SD 1.5 or SDXL, per ``model_index.json``) and its native size."""
    folder = hub.resolve(name_or_path, config.cache_dir)
    device = pick_device(config.device)
    dtype = pick_dtype(device, config.dtype)
    key = ("inpaint", str(folder), str(device), str(dtype), _memory_key(config))

    def build() -> Any:
        import diffusers

        cls_name = _pipeline_class_name(folder)
        _check_kind(folder, inpaint=True)
        if "XL" in cls_name:
            pipe = diffusers.StableDiffusionXLInpaintPipeline.from_pretrained(folder, **_common_kwargs(dtype))
        else:
            pipe = diffusers.StableDiffusionInpaintPipeline.from_pretrained(
                folder,
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
                **_common_kwargs(dtype),
            )
        return configure_pipeline(pipe, config, device)

    return _load(key, config, build, name_or_path), native_size(name_or_path, folder)


def load_repaint(base: str, controlnet: str, config: NeuralConfig) -> tuple[Any, int]:
    """SD 1.5 img2img under the tile ControlNet, and its native size."""
    base_folder = hub.resolve(base, config.cache_dir)
    cn_folder = hub.resolve(controlnet, config.cache_dir)
    device = pick_device(config.device)
    dtype = pick_dtype(device, config.dtype)
    key = ("repaint", str(base_folder), str(cn_folder), str(device), str(dtype), _memory_key(config))

    def build() -> Any:
        import diffusers

        _check_kind(base_folder, inpaint=False)
        cn = diffusers.ControlNetModel.from_pretrained(cn_folder, **_common_kwargs(dtype))
        pipe = diffusers.StableDiffusionControlNetImg2ImgPipeline.from_pretrained(
            base_folder,
            controlnet=cn,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
            **_common_kwargs(dtype),
        )
        return configure_pipeline(pipe, config, device)

    return _load(key, config, build, f"{base} / {controlnet}"), native_size(base, base_folder)


def step_callback(ctx: Any, total: int, label: str) -> Any:
    """A diffusers ``callback_on_step_end`` that reports progress and raises ``Cancelled`` between steps."""

    def callback(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        ctx.progress(min(1.0, (step + 1) / max(total, 1)), f"{label} step {step + 1}/{total}")
        ctx.check_cancel()
        return kwargs

    return callback


def generator(seed: int) -> Any:
    """A CPU generator: the same seed gives the same noise on every device."""
    import torch

    return torch.Generator(device="cpu").manual_seed(int(seed))


def to_tensor(image: Any) -> Any:
    """(H, W[, C]) float numpy in 0..1 -> (1, C, H, W) float32 tensor."""
    import numpy as np
    import torch

    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None]


def join_prompt(*parts: str) -> str:
    """Non-empty prompt parts joined with commas."""
    return ", ".join(p.strip() for p in parts if p and p.strip())


def working_shape(size: int, pad: int, work_height: int) -> tuple[int, int]:
    """(height, width) the seam-padded atlas (size x size+2*pad) is resampled to for a model of
    ``work_height`` px; both multiples of 64 so any VAE/UNet down-sampling divides them."""
    scale = work_height / size
    height = max(64, int(round(size * scale / 64.0)) * 64)
    width = max(64, int(round((size + 2 * pad) * scale / 64.0)) * 64)
    return height, width
