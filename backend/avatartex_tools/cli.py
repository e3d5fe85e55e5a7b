"""``avatartex-tools``: train-prior, convert-prior and export-onnx (prior tools, not run by requests).

avatartex-tools train-prior --heads DIR --out OUT       # a StyleGAN2 prior in atlas space
avatartex-tools convert-prior --stylegan-pkl F --trust-pickle --out P.safetensors
avatartex-tools export-onnx --prior P --out F.onnx     # in a separate env with `onnx`
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from avatartex.console import run_subcommands


def _train_prior(args: argparse.Namespace) -> int:
    import tempfile

    from avatartex.engines.neural.stylegan2 import GeneratorConfig

    from .train_prior import TrainConfig, heads_to_textures, load_textures, train

    folder = args.textures
    if args.heads:
        folder = str(
            heads_to_textures(args.heads, args.resolution, tempfile.mkdtemp(prefix="avatartex-heads-"))
        )
    gcfg = GeneratorConfig(
        resolution=args.resolution, channel_max=args.channel_max, z_dim=args.z_dim, w_dim=args.z_dim
    )
    config = TrainConfig(
        generator=gcfg,
        batch=args.batch,
        steps=args.steps,
        lr=args.lr,
        checkpoint_every=args.checkpoint_every,
        device=args.device,
        seed=args.seed,
        augment=not args.no_augment,
        pl_weight=args.pl_weight,
    )
    textures = load_textures(folder, args.resolution)

    def progress(fraction: float, message: str) -> None:
        print(f"\r{fraction * 100:5.1f}% {message}", end="", file=sys.stderr, flush=True)

    result = train(textures, args.out, config, max_steps=args.max_steps, progress=progress)
    print(file=sys.stderr)
    print(
        f"step {result.step} (resumed from {result.resumed_from}); prior {result.prior}; "
        f"preview {result.preview}"
    )
    return 0


def _convert_prior(args: argparse.Namespace) -> int:
    from .convert import convert_stylegan_pkl

    path = convert_stylegan_pkl(args.stylegan_pkl, args.out, trust_pickle=args.trust_pickle)
    print(f"prior written to {path}")
    return 0


def _export_onnx(args: argparse.Namespace) -> int:
    from .onnx_export import export_synthesis

    path = export_synthesis(args.prior, args.out)
    print(f"ONNX synthesis network written to {path}")
    return 0


def add_subcommands(subparsers: Any) -> None:
    """Add ``train-prior``, ``convert-prior`` and ``export-onnx`` to a parser."""
    t = subparsers.add_parser(
        "train-prior", help="train a StyleGAN2 prior in atlas space (StyleGAN2-ADA's losses and augmentation)"
    )
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--textures", help="folder of head-atlas textures (PNG/JPEG)")
    src.add_argument("--heads", help="folder of textured heads, converted to the atlas first")
    t.add_argument(
        "--out",
        required=True,
        help="output folder: checkpoint, prior.safetensors, preview.png; "
        "an existing checkpoint there is resumed",
    )
    t.add_argument("--resolution", type=int, default=256)
    t.add_argument("--channel-max", type=int, default=512)
    t.add_argument("--z-dim", type=int, default=512)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--steps", type=int, default=20000, help="total steps of the run")
    t.add_argument("--max-steps", type=int, default=None, help="stop after this many steps of this call")
    t.add_argument("--lr", type=float, default=0.0025)
    t.add_argument("--checkpoint-every", type=int, default=500)
    t.add_argument("--device", default="auto")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--no-augment", action="store_true", help="turn off adaptive discriminator augmentation (ADA)"
    )
    t.add_argument("--pl-weight", type=float, default=2.0, help="path-length regularisation weight, 0 = off")
    t.set_defaults(handler=_train_prior)

    c = subparsers.add_parser("convert-prior", help="convert an official StyleGAN2(-ADA) .pkl to a prior")
    c.add_argument(
        "--stylegan-pkl", required=True, help="network-snapshot-*.pkl of StyleGAN2-ADA / StyleGAN3"
    )
    c.add_argument(
        "--trust-pickle",
        action="store_true",
        help="required: unpickling can run code; only use files from a source you trust",
    )
    c.add_argument("--out", required=True, help="output .safetensors prior")
    c.set_defaults(handler=_convert_prior)

    e = subparsers.add_parser(
        "export-onnx",
        help="export a prior's synthesis network to ONNX (needs the onnx package, in a separate environment)",
    )
    e.add_argument("--prior", required=True)
    e.add_argument("--out", required=True)
    e.set_defaults(handler=_export_onnx)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``avatartex-tools`` console script (``python -m avatartex_tools.cli``)."""
    return run_subcommands("avatartex-tools", "Stage-2 prior tools of AvatarTex.", add_subcommands, argv)


if __name__ == "__main__":
    sys.exit(main())
