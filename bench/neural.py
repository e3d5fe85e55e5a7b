"""Benchmark of the neural engine: seconds and peak memory per stage at 512 and 1024, cold and warm.

    # CPU, tiny random models (what this project's CI machines can run):
    PYTHONPATH=backend python bench/neural.py --tiny
    # GPU, the registry models' real architectures with random weights (speed and memory are the real ones):
    PYTHONPATH=backend python bench/neural.py --sizes 512 1024 --dtype fp16 [--low-vram]

"cold" includes loading the pipelines from disk (``from_pretrained`` of safetensors) and the first
CUDA kernels; "warm" is the same request again with the models kept loaded, as in the server.
Peak memory is CUDA's max allocated per stage on a GPU, and the process's peak RSS so far on a CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

from avatartex.engines.base import AtlasTexture, StageContext  # noqa: E402
from avatartex.engines.neural import pipelines  # noqa: E402
from avatartex.engines.neural.config import NeuralConfig  # noqa: E402
from avatartex.engines.neural.device import peak_memory_gb, pick_device, pick_dtype, reset_peak_memory  # noqa: E402


def build_models(root: Path, tiny: bool, dtype) -> NeuralConfig:
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
    return NeuralConfig(
        inpaint_model=str(root / "inpaint"),
        repaint_model=str(root / "base"),
        controlnet_model=str(root / "controlnet"),
        prior=str(root / "prior.safetensors"),
    )


def run_once(stages, size: int, device, seed: int = 0) -> dict[str, dict[str, float]]:
    """Run the three stages once on a synthetic atlas; seconds and peak memory of each."""
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
            repaint_strength=0.3,
            guidance_scale=7.5,
        ),
        seed=seed,
    )
    out = {}
    for stage in stages:
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


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="tiny random models (CPU)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--low-vram", action="store_true", help="model CPU offload + slicing + VAE tiling")
    parser.add_argument("--inpaint-steps", type=int, default=20)
    parser.add_argument("--repaint-steps", type=int, default=20)
    parser.add_argument("--latent-steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    import torch
    from avatartex.engines.neural import build_stages

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    dtype = pick_dtype(device, args.dtype)
    results = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "dtype": str(dtype),
        "tiny": args.tiny,
        "low_vram": args.low_vram,
        "runs": {},
    }
    with tempfile.TemporaryDirectory(prefix="avatartex-bench-") as tmp:
        t0 = time.perf_counter()
        config = build_models(Path(tmp), args.tiny, dtype)
        results["build_models_seconds"] = time.perf_counter() - t0
        config.device, config.dtype, config.low_vram = args.device, args.dtype, args.low_vram
        config.inpaint_steps, config.repaint_steps = args.inpaint_steps, args.repaint_steps
        config.latent_steps = args.latent_steps
        if args.tiny:
            config.work_size = 64
        for size in args.sizes:
            pipelines.clear_cache()
            stages = build_stages(SimpleNamespace(prior=None), config)
            for label in ("cold", "warm"):
                results["runs"][f"{size}/{label}"] = run_once(stages, size, device)
    print(
        f"device {results['device']}  dtype {results['dtype']}  tiny={args.tiny}  low_vram={args.low_vram}  "
        f"steps inpaint/repaint/latent {args.inpaint_steps}/{args.repaint_steps}/{args.latent_steps}"
    )
    print(f"{'run':12} {'inpaint s':>10} {'latent s':>10} {'repaint s':>10} {'total s':>9} {'peak GB':>8}")
    for key, run in results["runs"].items():
        print(
            f"{key:12} {run['inpaint']['seconds']:10.2f} {run['latent']['seconds']:10.2f} "
            f"{run['repaint']['seconds']:10.2f} {run['total']['seconds']:9.2f} {run['total']['peak_gb']:8.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
