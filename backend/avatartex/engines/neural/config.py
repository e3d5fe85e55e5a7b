"""Settings of the neural engine, one plain object passed to every neural stage."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class NeuralConfig:
    """How the neural stages run: which models, on which device, at which precision and cost.

    Model fields take either a registry name (``neural/registry.py``) or a local folder laid out like a
    diffusers ``save_pretrained`` output, so tests and artists with custom models need no Hub at all.
    """

    device: str = "auto"
    """``auto`` (cuda, then mps, then cpu), ``cuda``, ``cuda:1``, ``mps`` or ``cpu``."""
    dtype: str = "auto"
    """``auto`` (fp16 on CUDA/MPS, fp32 on CPU), ``fp16``, ``bf16`` or ``fp32``."""
    low_vram: bool = False
    """For 6–8 GB cards: model CPU offload, attention slicing and VAE tiling."""
    attention_slicing: bool = False
    vae_tiling: bool = False
    cache_dir: str = ""
    """Hugging Face hub cache folder; empty uses ``HF_HUB_CACHE`` / ``HF_HOME`` like huggingface_hub."""
    inpaint_model: str = "sd15-inpaint"
    """Registry name or local folder of a Stable Diffusion (XL) inpainting pipeline."""
    inpaint_model_hires: str = ""
    """Registry name used instead of ``inpaint_model`` from ``hires_size`` up (empty: none)."""
    hires_size: int = 1024
    repaint_model: str = "sd15"
    """Registry name or local folder of the Stable Diffusion 1.5 base pipeline used by the repaint."""
    controlnet_model: str = "controlnet-tile-sd15"
    """Registry name or local folder of the tile ControlNet."""
    prior: str = ""
    """Path of a StyleGAN2 prior (``.safetensors`` from ``train-prior``/``convert-prior``); empty: none."""
    inpaint_steps: int = 25
    repaint_steps: int = 20
    latent_steps: int = 200
    """Step budget of the W+ latent optimisation."""
    latent_lr: float = 0.05
    latent_perceptual_weight: float = 0.3
    latent_reg_weight: float = 1e-3
    work_size: int = 0
    """Edge (height) in pixels the diffusion models run at; 0 uses the model's native size."""
    seam_pad: float = 0.125
    """Fraction of the atlas width padded circularly on each side of the back-of-head seam."""
    controlnet_scale: float = 0.8
    detail_levels: int = 2
    """Wavelet levels of portrait detail re-injected by the repaint."""
    detail_weight: float = 1.0
    keep_models_loaded: bool = True
    """Keep pipelines in memory between requests (the server does; one-off CLI runs may not need to)."""
    local_files_only: bool | None = None
    """Never touch the network; ``None`` follows ``HF_HUB_OFFLINE``."""
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> NeuralConfig:
        """The settings the Blender add-on passes when it starts the backend process.

        ``AVATARTEX_DEVICE`` (auto, cuda, cuda:N, mps, cpu), ``AVATARTEX_LOW_VRAM`` ("1" for 6-8 GB
        cards) and ``AVATARTEX_MODEL_CACHE`` (a Hugging Face cache folder).
        """
        import os

        device = os.environ.get("AVATARTEX_DEVICE", "").strip().lower()
        return cls(
            device=device if device and device != "default" else "auto",
            low_vram=os.environ.get("AVATARTEX_LOW_VRAM", "0") == "1",
            cache_dir=os.environ.get("AVATARTEX_MODEL_CACHE", ""),
        )
