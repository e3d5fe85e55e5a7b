"""The models the neural engine may use, as data: repo, pinned revision, files, licence, VRAM.

Revisions: no machine of this project can reach the Hub, so the exact commit of each repository could
not be looked up and none is written here from memory (a made-up hash would fail, or worse, point at
something else). Each entry is pinned to its revision *name* (``main``) and ``hub.download`` records
the commit it actually fetched in ``<cache>/avatartex-models.lock.json``; later loads use that
commit's snapshot, so a machine keeps using exactly what it downloaded. Replace ``main`` with a commit
hash here once one has been verified against the Hub.

Only safetensors are listed in ``files``: the repositories also hold pickled ``.bin``/``.ckpt`` weights,
which are never fetched nor loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...protocol import AvatarTexError, ErrorCode

_SD_CONFIGS = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    "unet/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "tokenizer/*",
)
_SD_WEIGHTS = (
    "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
)


@dataclass(frozen=True)
class ModelEntry:
    """One downloadable model."""

    name: str
    """Short name used on the command line (``avatartex models download NAME``)."""
    repo_id: str
    revision: str
    """Pinned revision (commit hash once verified; see the module docstring)."""
    kind: str
    """``sd-inpaint``, ``sdxl-inpaint``, ``sd``, ``controlnet`` or ``ip-adapter``."""
    stage: str
    """``inpaint``, ``repaint`` or ``style``."""
    files: tuple[str, ...]
    """``allow_patterns`` of the download: configs, tokenizer files and safetensors only."""
    licence: str
    vram_gb: float
    """Approximate VRAM of inference in fp16 at the native size (without CPU offload)."""
    native_size: int
    """Edge in pixels the model was trained at."""
    size_gb: float
    """Approximate download size."""
    default: bool = False
    """Downloaded by ``avatartex models download`` with no name, and needed by ``engine=auto``."""
    description: str = ""


REGISTRY: dict[str, ModelEntry] = {
    e.name: e
    for e in (
        ModelEntry(
            name="sd15-inpaint",
            repo_id="stable-diffusion-v1-5/stable-diffusion-inpainting",
            revision="main",
            kind="sd-inpaint",
            stage="inpaint",
            files=_SD_CONFIGS + _SD_WEIGHTS,
            licence="CreativeML OpenRAIL-M",
            vram_gb=3.5,
            native_size=512,
            size_gb=4.3,
            default=True,
            description="Stable Diffusion 1.5 inpainting: light, 512 px; the default stage-1 model.",
        ),
        ModelEntry(
            name="sdxl-inpaint",
            repo_id="diffusers/stable-diffusion-xl-1.0-inpainting-0.1",
            revision="main",
            kind="sdxl-inpaint",
            stage="inpaint",
            files=_SD_CONFIGS
            + _SD_WEIGHTS
            + ("text_encoder_2/config.json", "text_encoder_2/model.safetensors", "tokenizer_2/*"),
            licence="CreativeML OpenRAIL++-M",
            vram_gb=9.0,
            native_size=1024,
            size_gb=13.9,
            description="Stable Diffusion XL inpainting: 1024 px, higher quality, needs a bigger card.",
        ),
        ModelEntry(
            name="sd15",
            repo_id="stable-diffusion-v1-5/stable-diffusion-v1-5",
            revision="main",
            kind="sd",
            stage="repaint",
            files=_SD_CONFIGS + _SD_WEIGHTS,
            licence="CreativeML OpenRAIL-M",
            vram_gb=3.5,
            native_size=512,
            size_gb=4.3,
            default=True,
            description="Stable Diffusion 1.5 base: the repaint's img2img model under the tile ControlNet.",
        ),
        ModelEntry(
            name="controlnet-tile-sd15",
            repo_id="lllyasviel/control_v11f1e_sd15_tile",
            revision="main",
            kind="controlnet",
            stage="repaint",
            files=("config.json", "diffusion_pytorch_model.safetensors"),
            licence="CreativeML OpenRAIL-M",
            vram_gb=1.5,
            native_size=512,
            size_gb=1.45,
            default=True,
            description="ControlNet 1.1 tile for SD 1.5: keeps the repaint on the input's layout.",
        ),
        ModelEntry(
            name="ip-adapter-sd15",
            repo_id="h94/IP-Adapter",
            revision="main",
            kind="ip-adapter",
            stage="style",
            files=(
                "models/ip-adapter_sd15.safetensors",
                "models/image_encoder/config.json",
                "models/image_encoder/model.safetensors",
            ),
            licence="Apache-2.0",
            vram_gb=1.0,
            native_size=512,
            size_gb=2.6,
            description="Optional style reference image adapter (not used by the default stages yet).",
        ),
    )
}
"""Every model the engine knows, by name."""


def get_entry(name: str) -> ModelEntry:
    """The registry entry called ``name``, or a typed error listing the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise AvatarTexError(
            ErrorCode.MODEL_MISSING,
            f"No model called {name!r} in the registry.",
            f"Known models: {', '.join(sorted(REGISTRY))} (avatartex models list).",
        ) from None


def default_entries() -> list[ModelEntry]:
    """The models the default neural pipeline needs."""
    return [e for e in REGISTRY.values() if e.default]
