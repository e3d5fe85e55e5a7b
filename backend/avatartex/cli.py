"""The ``avatartex`` command: generate a texture, preview it, run the demo, manage neural models.

avatartex generate --mesh head.glb --portrait me.jpg --out out/ [--style toon] [--size 2048]
avatartex preview --mesh head.glb --texture out/texture.png --out out/preview.png
avatartex demo --out out/demo
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import __version__
from .cli_models import add_subcommands as add_model_commands
from .console import ProgressBar, print_error
from .protocol import ENGINES, AvatarTexError, GenerateParams


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="portrait + head mesh -> texture.png + report.json")
    p.add_argument("--mesh", required=True, help=".glb/.gltf/.obj/.ply or an add-on capture .npz")
    p.add_argument("--portrait", required=True, help="the portrait photo")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--style", default="photoreal", help="style preset (avatartex styles lists them)")
    p.add_argument("--prompt", default="", help="extra words for the style's prompt (neural engine)")
    p.add_argument("--size", type=int, default=1024, help="texture edge in pixels, 512-4096")
    p.add_argument("--engine", default="auto", choices=ENGINES)
    p.add_argument(
        "--device",
        default="",
        help="where the neural engine runs: auto, cuda, cuda:N, mps or cpu (slow); "
        "default: AVATARTEX_DEVICE, else auto",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strength", type=float, default=1.0, help="style strength, 0 (photo) to 1")
    p.add_argument("--uv-map", default="", help="UV map name where the mesh has several")
    p.add_argument("--unwrap", action="store_true", help="make a UV map with xatlas if the mesh has none")
    p.add_argument("--facing", default="", help="direction the face looks (+z, -y, ...); default: search")
    p.add_argument("--bit-depth", type=int, default=8, choices=(8, 16))
    p.add_argument(
        "--debug",
        action="store_true",
        help="also write the partial projection, confidence and a landmark overlay",
    )


def _generate(args) -> int:
    from .pipeline import Generator

    params = GenerateParams(
        mesh=args.mesh,
        portrait=args.portrait,
        out_dir=args.out,
        style=args.style,
        prompt=args.prompt,
        size=args.size,
        engine=args.engine,
        seed=args.seed,
        strength=args.strength,
        uv_map=args.uv_map,
        unwrap=args.unwrap,
        bit_depth=args.bit_depth,
        debug=args.debug,
        facing=args.facing,
    )
    bar = ProgressBar()
    try:
        result = Generator(neural_config=_neural_config(args.device)).generate(params, bar)
    finally:
        bar.close()
    report = result["report"]
    print(
        f"wrote {result['texture']} ({report['engine']} engine, {report['style']}, "
        f"{report['timings']['total']:.2f} s, coverage {report['coverage']:.0%}, "
        f"registration error {report['registration_error']:.3f} IOD)"
    )
    for warning in report["warnings"]:
        print(f"warning: {warning}")
    return 0


def _neural_config(device: str):
    """The neural engine's settings from the environment, with ``--device`` on top."""
    from .engines.neural import NeuralConfig

    config = NeuralConfig.from_env()
    if device:
        config.device = device.strip().lower()
    return config


def _add_preview(sub) -> None:
    p = sub.add_parser("preview", help="render a textured head from the front, side and back")
    p.add_argument("--mesh", required=True)
    p.add_argument("--texture", required=True)
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--size", type=int, default=512, help="height of each view in pixels")
    p.add_argument("--uv-map", default="")
    p.add_argument("--facing", default="+z", help="direction the face looks in the mesh (default +z)")
    p.add_argument("--up", default="+y", help="the mesh's up axis (default +y, glTF; Blender is +z)")


def _axis(text: str):
    from .mesh import parse_facing

    return parse_facing(text)


def _preview(args) -> int:
    from .image_io import load_texture
    from .mesh import load_mesh
    from .preview import render_preview

    mesh = load_mesh(args.mesh, args.uv_map)
    render_preview(
        mesh,
        load_texture(args.texture),
        args.out,
        size=args.size,
        up=_axis(args.up),
        forward=_axis(args.facing),
    )
    print(f"wrote {args.out}")
    return 0


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="the project's own head + a public-domain portrait -> out/demo")
    p.add_argument("--out", default="out/demo")
    p.add_argument("--style", default="photoreal")
    p.add_argument("--size", type=int, default=1024)


def _demo(args) -> int:
    """Texture the project's own sculpted head from skimage's astronaut photo (public domain)."""
    import numpy as np
    from skimage import data

    from .demo_head import make_demo_head, save_demo_head
    from .image_io import load_texture, save_png
    from .mesh import Mesh, load_mesh, save_capture
    from .pipeline import Generator
    from .preview import render_preview

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # The capture carries the head's landmark pins, the fallback should the detector miss its face;
    # the .glb is the same head for opening in Blender.
    positions, triangles, uvs, pins = make_demo_head()
    mesh_path = out / "demo_head.npz"
    save_capture(Mesh(positions, triangles, uvs, None, pins, "DemoHead"), mesh_path)
    save_demo_head(out / "demo_head.glb")
    portrait_path = out / "portrait.png"
    save_png(portrait_path, np.asarray(data.astronaut(), np.uint8))
    params = GenerateParams(
        mesh=str(mesh_path),
        portrait=str(portrait_path),
        out_dir=str(out),
        style=args.style,
        size=args.size,
        engine="classic",
    )
    bar = ProgressBar()
    try:
        result = Generator(neural_config=_neural_config(args.device)).generate(params, bar)
    finally:
        bar.close()
    preview = out / "preview.png"
    render_preview(load_mesh(mesh_path), load_texture(result["texture"]), preview)
    report = result["report"]
    print(
        json.dumps(
            {
                k: report[k]
                for k in (
                    "engine",
                    "style",
                    "size",
                    "coverage",
                    "registration_error",
                    "landmarks_source",
                    "timings",
                )
            },
            indent=1,
        )
    )
    print(f"wrote {result['texture']}, {out / 'report.json'} and {preview}")
    return 0


def _styles(args) -> int:
    from .styles import list_styles

    for style in list_styles():
        print(f"{style.name:<12} {style.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``avatartex`` (also used by the docs and tests)."""
    parser = argparse.ArgumentParser(prog="avatartex", description="Portrait -> seam-free head texture.")
    parser.add_argument("--version", action="version", version=f"avatartex {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_generate(sub)
    _add_preview(sub)
    _add_demo(sub)
    sub.add_parser("styles", help="list the style presets")
    add_model_commands(sub)
    return parser


COMMANDS = {"generate": _generate, "preview": _preview, "demo": _demo, "styles": _styles}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``avatartex`` console script and ``python -m avatartex``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler = COMMANDS.get(args.command) or getattr(args, "handler", None)
    try:
        return handler(args)
    except AvatarTexError as error:
        return print_error(error)


if __name__ == "__main__":
    sys.exit(main())
