"""Randomly initialised diffusers models written to a folder, for tests and benchmarks.

``tiny`` models (a few hundred thousand weights) run on a CPU in milliseconds, the way diffusers' own
tests do; ``real`` models have the exact architectures of the registry's models (SD 1.5 UNet, VAE, CLIP
ViT-L text encoder, ControlNet) with random weights, so GPU timings and memory are the real ones.
Either way they are saved with ``save_pretrained`` and loaded back through the real ``from_pretrained``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def write_tiny_clip_tokenizer(folder: Path) -> Any:
    """A working CLIP BPE tokenizer with a ~60-token vocabulary (letters, a few merges)."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<|startoftext|>", "<|endoftext|>"] + list(_LETTERS) + [c + "</w>" for c in _LETTERS]
    tokens += ["in", "er</w>", "in</w>", "sk", "skin</w>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\ni n\ne r</w>\ni n</w>\ns k\nsk in</w>\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def _text_encoder(scale: str) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    if scale == "real":
        # openai/clip-vit-large-patch14's text tower, as in SD 1.5.
        config = CLIPTextConfig(
            hidden_size=768,
            intermediate_size=3072,
            num_attention_heads=12,
            num_hidden_layers=12,
            vocab_size=49408,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            projection_dim=768,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    else:
        config = CLIPTextConfig(
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=100,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    return CLIPTextModel(config)


def _unet_kwargs(scale: str, in_channels: int) -> dict[str, Any]:
    if scale == "real":
        return dict(
            sample_size=64,
            in_channels=in_channels,
            out_channels=4,
            layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280),
            cross_attention_dim=768,
            attention_head_dim=8,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        )
    return dict(
        sample_size=16,
        in_channels=in_channels,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    )


def _vae(scale: str) -> Any:
    from diffusers import AutoencoderKL

    if scale == "real":
        return AutoencoderKL(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            layers_per_block=2,
            block_out_channels=(128, 256, 512, 512),
            sample_size=512,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
        )
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        norm_num_groups=8,
        sample_size=32,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
    )


def _scheduler() -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def build_sd_folder(
    folder: Path, *, inpaint: bool, scale: str = "tiny", seed: int = 0, dtype: Any = None
) -> Path:
    """Write a random SD 1.5(-inpainting) pipeline to ``folder`` (``scale`` is ``tiny`` or ``real``)."""
    import shutil

    import torch
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline, UNet2DConditionModel

    torch.manual_seed(seed)
    folder = Path(folder)
    tokenizer = write_tiny_clip_tokenizer(folder / "_tok_src")
    unet = UNet2DConditionModel(**_unet_kwargs(scale, 9 if inpaint else 4))
    cls = StableDiffusionInpaintPipeline if inpaint else StableDiffusionPipeline
    pipe = cls(
        vae=_vae(scale),
        text_encoder=_text_encoder(scale),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    if dtype is not None:
        pipe.to(dtype=dtype)
    pipe.save_pretrained(folder, safe_serialization=True)
    shutil.rmtree(folder / "_tok_src")
    return folder


def build_controlnet_folder(folder: Path, *, scale: str = "tiny", seed: int = 0, dtype: Any = None) -> Path:
    """Write a random (tile-style) ControlNet matching ``build_sd_folder``'s UNet to ``folder``."""
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    kwargs = _unet_kwargs(scale, 4)
    kwargs.pop("up_block_types")
    kwargs.pop("out_channels")
    kwargs.pop("sample_size")
    if scale == "real":
        kwargs["conditioning_embedding_out_channels"] = (16, 32, 96, 256)
    else:
        kwargs["conditioning_embedding_out_channels"] = (8, 16)  # one /2, like the tiny VAE
    model = ControlNetModel(**kwargs)
    if dtype is not None:
        model.to(dtype=dtype)
    model.save_pretrained(folder, safe_serialization=True)
    return Path(folder)
