"""Benchmark of the neural engine: seconds and peak memory per stage, cold and warm.

    # CPU, tiny random models (what this project's CI machines can run):
    PYTHONPATH=backend python bench/neural.py --tiny --sizes 512
    # The registry models' real architectures (SD 1.5 inpainting; SD 1.5 + control_v11f1e_sd15_tile;
    # CLIP ViT-L/14 text tower; a StyleGAN2 prior at 512) with random weights, configs as published,
    # nothing downloaded. On a CPU, one denoising step per stage proves the real shapes run end to end:
    PYTHONPATH=backend python bench/neural.py --real-config --device cpu --steps 1 --sizes 512
    # On a GPU the same models give the real speed and memory (weights do not change either):
    PYTHONPATH=backend python bench/neural.py --real-config --device cuda --sizes 1024 --dtype fp16
    PYTHONPATH=backend python bench/neural.py --real-config --device cuda --sizes 1024 --low-vram

"cold" includes loading the pipelines from disk (``from_pretrained`` of safetensors) and the first
CUDA kernels; "warm" is the same request again with the models kept loaded, as in the server.
Peak memory is CUDA's max allocated per stage on a GPU (``peak GB``), and on a CPU the process's peak
resident set so far (monotonic, so a stage's figure includes every stage before it).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

from avatartex.engines.base import AtlasTexture, StageContext  # noqa: E402
from avatartex.engines.neural import pipelines  # noqa: E402
from avatartex.engines.neural.config import NeuralConfig  # noqa: E402
from avatartex.engines.neural.device import peak_memory_gb, pick_device, pick_dtype, reset_peak_memory  # noqa: E402

REPAINT_STRENGTH = 0.3
"""The bench style's repaint strength (photoreal ships 0.25): img2img runs this fraction of its steps."""


def build_models(root: Path, tiny: bool) -> NeuralConfig:
    """Write random models (tiny or real-size) and a random StyleGAN2 prior; a config that uses them."""
    import torch
    from avatartex.engines.neural.prior import save_prior
    from avatartex.engines.neural.stylegan2 import Generator, GeneratorConfig
    from avatartex_tools.tiny_models import build_controlnet_folder, build_sd_folder

    scale = "tiny" if tiny else "real"
    save_dtype = None if tiny else torch.float16  # real-size weights are written in fp16 like the Hub's
    build_sd_folder(root / "inpaint", inpaint=True, scale=scale, dtype=save_dtype)
    build_sd_folder(root / "base", inpaint=False, scale=scale, dtype=save_dtype)
    build_controlnet_folder(root / "controlnet", scale=scale, dtype=save_dtype)
    gcfg = (
        GeneratorConfig(resolution=32, z_dim=32, w_dim=32, mapping_layers=2, channel_base=512, channel_max=32)
        if tiny
        else GeneratorConfig(resolution=512)
    )
    torch.manual_seed(0)
    save_prior(Generator(gcfg), root / "prior.safetensors")
    return models_config(root)


def models_config(root: Path) -> NeuralConfig:
    """A config that uses the models ``build_models`` wrote to ``root``."""
    return NeuralConfig(
        inpaint_model=str(root / "inpaint"),
        repaint_model=str(root / "base"),
        controlnet_model=str(root / "controlnet"),
        prior=str(root / "prior.safetensors"),
    )


def describe_models(config: NeuralConfig) -> dict[str, dict[str, Any]]:
    """Parameter counts and the defining config values of each saved model (read from its folder)."""

    def read(path: Path) -> dict[str, Any]:
        return json.loads(path.read_text())

    def params(folder: Path) -> int:
        from safetensors import safe_open

        total = 0
        for file in folder.glob("*.safetensors"):
            with safe_open(str(file), framework="pt") as f:
                for key in f.keys():
                    total += math.prod(f.get_slice(key).get_shape())
        return total

    keys = {
        "unet": ("in_channels", "block_out_channels", "cross_attention_dim", "attention_head_dim",
                 "layers_per_block", "sample_size"),
        "vae": ("block_out_channels", "latent_channels", "scaling_factor", "sample_size"),
        "text_encoder": ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                         "vocab_size", "max_position_embeddings"),
        "controlnet": ("in_channels", "conditioning_channels", "block_out_channels",
                       "conditioning_embedding_out_channels", "cross_attention_dim", "attention_head_dim"),
    }  # fmt: skip
    out: dict[str, dict[str, Any]] = {}
    for label, root in (("inpaint", config.inpaint_model), ("base", config.repaint_model)):
        for part in ("unet", "vae", "text_encoder"):
            folder = Path(root) / part
            cfg = read(folder / "config.json")
            out[f"{label}/{part}"] = {"params_m": params(folder) / 1e6, **{k: cfg.get(k) for k in keys[part]}}
    folder = Path(config.controlnet_model)
    cfg = read(folder / "config.json")
    out["controlnet"] = {"params_m": params(folder) / 1e6, **{k: cfg.get(k) for k in keys["controlnet"]}}
    return out


PROBED = ("CLIPTextModel", "Encoder", "UNet2DConditionModel", "ControlNetModel", "Decoder")
"""Sub-models whose first input shape each stage records (the VAE's encoder and decoder, by class)."""


def probe_shapes(current: dict[str, str]) -> tuple[dict[str, list], Any]:
    """Record the first input shape of each ``PROBED`` sub-model per stage (``current["stage"]``) while
    the hook is installed; returns the record and a function that removes the hook."""
    import torch

    seen: dict[str, list] = {}

    def record(module: Any, args: tuple) -> None:
        name = type(module).__name__
        if name in PROBED and args and hasattr(args[0], "shape"):
            seen.setdefault(f"{current.get('stage', '?')}.{name}", list(args[0].shape))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    return seen, handle.remove


def run_once(
    stages: list[Any], size: int, device: Any, seed: int = 0, current: dict[str, str] | None = None
) -> dict[str, dict[str, float]]:
    """Run the three stages once on a synthetic atlas; seconds and peak memory of each. ``current``
    is told which stage runs (for ``probe_shapes``)."""
    import torch

    rng = np.random.default_rng(seed)
    color = np.clip(0.5 + 0.1 * rng.standard_normal((size, size, 3)), 0, 1).astype(np.float32)
    confidence = np.zeros((size, size), np.float32)
    confidence[size // 5 : size * 3 // 5, size // 3 : size * 2 // 3] = 1.0
    texture = AtlasTexture(color, confidence)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    ctx = StageContext(
        atlas=SimpleNamespace(size=size, band_rows=int(0.75 * size), mask=np.ones((size, size), bool)),
        portrait=color.copy(),
        portrait_coords=np.stack([xx + 0.5, yy + 0.5], -1),
        style=SimpleNamespace(
            prompt="photo of human skin texture",
            negative_prompt="",
            inpaint_strength=1.0,
            repaint_strength=REPAINT_STRENGTH,
            guidance_scale=7.5,
        ),
        seed=seed,
    )
    out = {}
    for stage in stages:
        if current is not None:
            current["stage"] = stage.name
        reset_peak_memory(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        texture = stage.run(texture, ctx)
        if device.type == "cuda":
            torch.cuda.synchronize()
        out[stage.name] = {"seconds": time.perf_counter() - start, "peak_gb": peak_memory_gb(device)}
    out["total"] = {
        "seconds": sum(v["seconds"] for v in out.values()),
        "peak_gb": max(v["peak_gb"] for v in out.values()),
    }
    return out


def say(line: str) -> None:
    """Print at once: a CPU run of the real models takes many minutes between lines."""
    print(line, flush=True)


def row(key: str, run: dict[str, dict[str, float]], memory: str) -> str:
    """One line of the table: seconds of each stage and in total, then each stage's peak memory."""
    return (
        f"{key:12} {run['inpaint']['seconds']:10.2f} {run['latent']['seconds']:10.2f} "
        f"{run['repaint']['seconds']:10.2f} {run['total']['seconds']:9.2f}   {'':{len(memory)}}  "
        + " ".join(f"{run[name]['peak_gb']:7.2f}" for name in ("inpaint", "latent", "repaint"))
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--tiny", action="store_true", help="tiny random models (CPU, seconds)")
    mode.add_argument(
        "--real-config",
        action="store_true",
        help="the registry models' published architectures with random weights (the default)",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024], help="atlas edges")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--low-vram", action="store_true", help="model CPU offload + slicing + VAE tiling")
    parser.add_argument(
        "--steps",
        type=int,
        default=0,
        help="denoising steps each diffusion stage runs and latent steps (sets the three below)",
    )
    parser.add_argument("--inpaint-steps", type=int, default=20)
    parser.add_argument(
        "--repaint-steps",
        type=int,
        default=20,
        help=f"img2img schedule length; at strength {REPAINT_STRENGTH} it runs that fraction of them",
    )
    parser.add_argument("--latent-steps", type=int, default=100)
    parser.add_argument("--no-warm", action="store_true", help="only the cold run of each size")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--models-dir",
        help="write the random models here, or reuse the ones a previous run wrote (default: a temp folder)",
    )
    args = parser.parse_args(argv)
    if args.steps:
        args.inpaint_steps = args.latent_steps = args.steps
        # img2img runs int(steps * strength) of its schedule: a schedule that runs exactly --steps.
        args.repaint_steps = math.ceil(args.steps / REPAINT_STRENGTH)

    import diffusers
    import torch
    from avatartex.engines.neural import build_stages
    from avatartex.engines.neural.repaint import effective_steps

    diffusers.utils.logging.disable_progress_bar()  # loading bars would bury the table

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    dtype = pick_dtype(device, args.dtype)
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "dtype": str(dtype),
        "models": "tiny" if args.tiny else "real-config",
        "low_vram": args.low_vram,
        "steps": {
            "inpaint": args.inpaint_steps,
            "repaint": effective_steps(args.repaint_steps, REPAINT_STRENGTH),
            "repaint_schedule": args.repaint_steps,
            "latent": args.latent_steps,
        },
        "runs": {},
        "shapes": {},
    }
    memory = "peak GB" if device.type == "cuda" else "RSS GB"
    with tempfile.TemporaryDirectory(prefix="avatartex-bench-") as tmp:
        root = Path(args.models_dir or tmp)
        t0 = time.perf_counter()
        if (root / "prior.safetensors").is_file():  # written last: the folder is complete
            config = models_config(root)
        else:
            config = build_models(root, args.tiny)
        results["build_models_seconds"] = time.perf_counter() - t0
        results["architecture"] = describe_models(config)
        steps = results["steps"]
        say(
            f"device {results['device']}  torch {results['torch']}  dtype {results['dtype']}  "
            f"models {results['models']}  low_vram={args.low_vram}  steps run inpaint/repaint/latent "
            f"{steps['inpaint']}/{steps['repaint']}/{steps['latent']}  "
            f"(models built and saved in {results['build_models_seconds']:.0f} s)"
        )
        for name, arch in results["architecture"].items():
            say(f"  {name:18} " + "  ".join(f"{k}={v}" for k, v in arch.items()))
        say(
            f"{'run':12} {'inpaint s':>10} {'latent s':>10} {'repaint s':>10} {'total s':>9}   "
            f"{memory}: {'inpaint':>7} {'latent':>7} {'repaint':>7}"
        )
        config.device, config.dtype, config.low_vram = args.device, args.dtype, args.low_vram
        config.inpaint_steps, config.repaint_steps = args.inpaint_steps, args.repaint_steps
        config.latent_steps = args.latent_steps
        if args.tiny:
            config.work_size = 64
        for size in args.sizes:
            pipelines.clear_cache()
            stages = [stage for stage, _reason in build_stages(SimpleNamespace(prior=None), config)]
            current: dict[str, str] = {}
            shapes, remove_hook = probe_shapes(current)  # cold run only: warm timings carry no hook
            try:
                run = results["runs"][f"{size}/cold"] = run_once(stages, size, device, current=current)
            finally:
                remove_hook()
            say(row(f"{size}/cold", run, memory))
            if not args.no_warm:
                run = results["runs"][f"{size}/warm"] = run_once(stages, size, device)
                say(row(f"{size}/warm", run, memory))
            results["shapes"][str(size)] = shapes
    for size, shapes in results["shapes"].items():
        say(f"input shapes at {size}: " + "  ".join(f"{k} {v}" for k, v in shapes.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
