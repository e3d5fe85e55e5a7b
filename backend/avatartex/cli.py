"""The ``avatartex`` command: generate a texture, preview it, run the demo, manage neural models.

avatartex generate --mesh head.glb --portrait me.jpg --out out/ [--style toon] [--size 2048]
avatartex preview --mesh head.glb --texture out/texture.png --out out/preview.png
avatartex demo --out out/demo
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from . import __version__
from .cli_models import add_subcommands as add_model_commands
from .console import ProgressBar, library_output, print_error
from .protocol import (
    ENGINES,
    MAX_SEED,
    PIN_NAMES,
    WHITE_BALANCE_CHOICES,
    AvatarTexError,
    ErrorCode,
    GenerateParams,
    Progress,
)

AXIS_OPTIONS = ("--facing", "--up")
"""Options whose values are axes such as ``-y``, which argparse would otherwise take for an option."""

_AXIS_VALUE = re.compile(r"^[+-]?[xyz]$", re.IGNORECASE)

PREVIEW_MAX_SIZE = 4096
"""``preview.MAX_SIZE``, named here for the help text without importing the renderer."""


def _join_axis_values(argv: list[str]) -> list[str]:
    """``--facing -y`` -> ``--facing=-y``: argparse reads a value starting with '-' as an option
    ("expected one argument"), while the help and every user write it separated."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in AXIS_OPTIONS and i + 1 < len(argv) and _AXIS_VALUE.match(argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


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
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help=f"seed of every random choice, 0 to {MAX_SEED} (default 0); toon, comic and anime on the "
        "classic engine at full strength make none: every seed gives the same texture",
    )
    p.add_argument(
        "--strength",
        type=float,
        default=1.0,
        help="style strength, 0 (photo) to 1 (the preset as designed; the default); other values are refused",
    )
    p.add_argument("--uv-map", default="", help="UV map name where the mesh has several")
    p.add_argument(
        "--unwrap",
        action="store_true",
        help="make a UV map with xatlas if the mesh has none; the mesh with it is written as mesh.glb",
    )
    p.add_argument("--facing", default="", help="direction the face looks (+z, -y, ...); default: search")
    p.add_argument("--bit-depth", type=int, default=8, choices=(8, 16))
    p.add_argument(
        "--base-texture",
        default="",
        help="full-body characters: the body's current texture (body.<UDIM>.png for UDIM tiles); only "
        "the head region is replaced",
    )
    p.add_argument(
        "--tone-match",
        default="body_to_face",
        choices=("body_to_face", "face_to_body", "none"),
        help="full-body characters, and a head on a --body-mesh: which side's skin tone is matched "
        "across the neck",
    )
    p.add_argument(
        "--body-mesh",
        default="",
        help="a body that is a mesh of its own (a separate object), in the head mesh's coordinates: "
        "with --body-texture, the skin is matched across the neck (body_to_face writes a toned copy of "
        "the body's texture, <texture>_body.png)",
    )
    p.add_argument("--body-texture", default="", help="with --body-mesh: the body's base-colour image")
    p.add_argument(
        "--material-textures",
        nargs="+",
        default=[],
        metavar="IMAGE",
        help="a mesh of several materials with the body in one of its own (Daz's and Character "
        "Creator's Face and Torso): each material's base-colour image, in the mesh's order of materials "
        "(report.json's material.names), '' for none; the skin is matched across the neck as with "
        "--body-mesh",
    )
    p.add_argument(
        "--scalp",
        default="",
        choices=("skin", "hair"),
        help="skin: a clean scalp with a soft hairline (hair as a separate mesh or cards); hair: the "
        "photo's hair continued over the whole scalp; default: the style's (skin)",
    )
    p.add_argument(
        "--subject",
        default="",
        choices=("same", "other"),
        help="same: the photo shows the person this head was made from (a scan), its mid-scale tones "
        "are kept; other: the head is another face (sculpted, stylized, someone else's), the photographed "
        "face's relief is taken off the skin; default: decided from the photo",
    )
    p.add_argument(
        "--white-balance",
        default="auto",
        choices=WHITE_BALANCE_CHOICES,
        help="the photo's light colour, read on its eye whites: auto takes it out where they show a "
        "coloured light (tungsten, a sunset, a cool shade); eyes always balances on them; both also "
        "brighten an underexposed photo and denoise a grainy one; off keeps the photo's colours, "
        "exposure and grain (default: auto)",
    )
    p.add_argument(
        "--pin",
        action="append",
        default=[],
        metavar="NAME=X,Y,Z",
        help="a landmark pin on the mesh, for heads whose face is not found or lands beside its place: a "
        "point in the mesh file's coordinates (its nearest vertex is pinned) or NAME=VERTEX; repeat for "
        f"each. Names: {', '.join(PIN_NAMES)} (left and right are the character's own)",
    )
    p.add_argument(
        "--debug",
        action="store_true",
        help="also write the partial projection, confidence and a landmark overlay",
    )


def _generate(args) -> int:
    from .pipeline import Generator
    from .pipeline.generator import check_params

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
        base_texture=args.base_texture,
        tone_match=args.tone_match,
        body_mesh=args.body_mesh,
        body_texture=args.body_texture,
        material_textures=list(args.material_textures),
        scalp=args.scalp,
        subject=args.subject,
        white_balance=args.white_balance,
        debug=args.debug,
        facing=args.facing,
        pins=parse_pins(args.pin),
    )
    neural_config = _neural_config(args.device)
    check_out_folder(Path(args.out))
    bar = ProgressBar()
    try:
        if args.unwrap:
            # The unwrap is the one long step inside reading the mesh: run it here, where its
            # progress can be shown; the pipeline then finds it in the unwrap cache.
            from .mesh import load_mesh

            check_params(params)
            load_mesh(args.mesh, args.uv_map, True, lambda f, m: bar(Progress("analyse", 0.05 * f, m)))
        result = Generator(neural_config=neural_config).generate(params, bar)
    finally:
        bar.close()
    report = result["report"]
    print_written(result)
    if args.seed and report["engine"] == "classic" and params.strength >= 1.0:
        from .styles import get_style

        if get_style(params.style).seed_free:
            print(
                f"note: {params.style} on the classic engine makes no random choice: seed {args.seed} gives "
                "the texture every seed gives (for variants, change the style or the strength)"
            )
    if (report.get("body") or {}).get("summary"):
        print(report["body"]["summary"][0].upper() + report["body"]["summary"][1:] + ".")
    if result.get("body_texture"):
        print(f"wrote {result['body_texture']}: the body's texture with its skin matched to the face's")
    if report.get("unwrapped_mesh"):
        print(
            f"wrote {report['unwrapped_mesh']}: the mesh with the UV map --unwrap made; the texture fits "
            f"this mesh, not {args.mesh}"
        )
    print_verdict(report)
    stale = stale_textures(result, params.texture_name)
    if stale:
        print(
            f"warning: {', '.join(str(path) for path in stale)} {'is' if len(stale) == 1 else 'are'} "
            "from another run, not this one (left as they were): delete them, or they may be taken "
            "for this texture"
        )
    return 0


def print_written(result: dict) -> None:
    """The line saying what was written and how: engine, style, time, coverage, registration error."""
    from . import uvtiles

    report, written = result["report"], result["texture"]
    if result.get("tiles"):  # several UDIM tiles: texture.<UDIM>.png each
        written = uvtiles.tile_pattern(written) + f" (UDIM tiles {', '.join(result['tiles'])})"
    print(
        f"wrote {written} ({report['engine']} engine, {report['style']}, "
        f"{report['timings']['total']:.2f} s, coverage {report['coverage']:.0%}, "
        f"registration error {report['registration_error']:.3f} IOD)"
    )


def print_verdict(report: dict) -> None:
    """The verdict on the registration (why, what to try, notes) and the report's other warnings."""
    quality = report.get("quality") or {}
    if quality:
        estimate = quality["estimated_error_iod"]
        print(f"verdict: {quality['verdict']} (estimated misplacement {estimate:.3f} IOD)")
        for reason in quality.get("reasons", []):
            print(f"  why: {reason}")
        for advice in quality.get("advice", []):
            print(f"  try: {advice}")
            if "pins" in advice:
                print(f"       {pin_how(report)}")
        for note in quality.get("notes", []):
            print(f"  note: {note}")
    for warning in report["warnings"]:
        if not warning.startswith("registration "):  # the verdict above says it
            print(f"warning: {warning}")


def check_out_folder(folder: Path) -> None:
    """A typed ``output_not_writable`` error, before any work, for an output folder that is a file
    or lies inside one (anything else missing is created; a folder that cannot be written is found
    by the generator's own check)."""
    for place in (folder, *folder.parents):
        if not place.exists():
            continue
        if not place.is_dir():
            where = "is a file" if place == folder else f"lies inside {place}, which is a file"
            raise AvatarTexError(
                ErrorCode.OUTPUT_NOT_WRITABLE,
                f"The output folder {folder} {where}, not a folder.",
                "Give a folder for --out (a missing one is created), or move the file out of the way.",
            )
        return


def stale_textures(result: dict, texture_name: str) -> list[Path]:
    """Files in the output folder named as this request's texture is (``texture.png`` and
    ``texture.<UDIM>.png``) that it did not write: left from another run (a UDIM head's tiles beside a
    single texture, or the reverse), which a person or Blender could take for this one's. Never
    deleted: they are the user's files."""
    written = {Path(result["texture"]), *map(Path, result.get("tiles", {}).values())}
    folder, name = Path(result["texture"]).parent, Path(texture_name)
    named = [folder / name, *folder.glob(f"{name.stem}.[0-9][0-9][0-9][0-9]{name.suffix}")]
    return sorted(path for path in named if path.is_file() and path not in written)


PIN_HOW = "with --pin NAME=X,Y,Z per pin (a point on the mesh in its file's coordinates)"


def pin_how(report: dict) -> str:
    """How to give pins, with an example at this mesh's own scale: where its nose tip was read
    (report ``mesh.landmarks``); a fixed example point was 350 % of the demo head's size off it."""
    read = (report.get("mesh") or {}).get("landmarks") or {}
    name = "nose_tip" if "nose_tip" in read else next(iter(read), None)
    if name is None:
        return f"{PIN_HOW}, or NAME=VERTEX (a vertex index)"
    point = ",".join(f"{v:.4g}" for v in read[name])
    return f"{PIN_HOW}; this mesh's {name} was read at {point} (--pin {name}=X,Y,Z puts it at X,Y,Z)"


def parse_pins(values: list[str]) -> dict[str, int | list[float]]:
    """``--pin`` values -> the request's ``pins``: ``NAME=VERTEX`` or ``NAME=X,Y,Z``; the names and
    whether the point lies on the mesh are checked with the mesh (``mesh.with_pins``)."""
    pins: dict[str, int | list[float]] = {}
    for value in values:
        name, _, text = value.partition("=")
        name, parts = name.strip(), [part.strip() for part in text.split(",")]
        try:
            pin = int(parts[0]) if len(parts) == 1 else [float(part) for part in parts]
        except ValueError:
            pin = None
        if isinstance(pin, list) and not all(map(math.isfinite, pin)):  # nan and inf parse as floats
            pin = None
        if not name or pin is None or (isinstance(pin, list) and len(pin) != 3):
            raise AvatarTexError(
                ErrorCode.BAD_REQUEST,
                f"--pin {value!r} is neither NAME=X,Y,Z nor NAME=VERTEX.",
                f"For example --pin nose_tip=0,1.62,0.11 (a point on the mesh, in its file's "
                f"coordinates) or --pin nose_tip=1234 (a vertex); names: {', '.join(PIN_NAMES)}.",
            )
        if name in pins:
            raise AvatarTexError(
                ErrorCode.BAD_REQUEST, f"--pin {name} is given twice.", "Give each pin once."
            )
        pins[name] = pin
    return pins


def _neural_config(device: str):
    """The neural engine's settings from the environment, with ``--device`` on top (a typed
    ``bad_request`` for one that is none of the forms the help names, without importing torch)."""
    from .engines.neural import NeuralConfig
    from .engines.neural.device import check_device

    config = NeuralConfig.from_env()
    if device:
        config.device = check_device(device.strip().lower())
    return config


def _add_preview(sub) -> None:
    p = sub.add_parser("preview", help="render a textured head from the front, side and back")
    p.add_argument(
        "--mesh", required=True, help="the mesh the texture was made for (mesh.glb after --unwrap)"
    )
    p.add_argument(
        "--texture", required=True, help="the texture; texture.<UDIM>.png for the tiles of a UDIM head"
    )
    p.add_argument("--out", required=True, help="PNG to write (named .png)")
    p.add_argument(
        "--size", type=int, default=512, help=f"height of each view in pixels, 1-{PREVIEW_MAX_SIZE}"
    )
    p.add_argument("--uv-map", default="")
    p.add_argument(
        "--facing", default="", help="direction the face looks (+z, -y, ...); default: found as generate does"
    )
    p.add_argument("--up", default="", help="the mesh's up axis (+y glTF, +z Blender); default: found")


def _preview_mesh(args):
    """The mesh to preview: ``--mesh``, or when it has no UV map, the one ``generate --unwrap`` wrote
    beside the texture (the texture fits only that one)."""
    from .mesh import load_mesh

    try:
        return load_mesh(args.mesh, args.uv_map)
    except AvatarTexError as error:
        if error.code != ErrorCode.NO_UV_MAP:
            raise
        unwrapped = _unwrapped_mesh_beside(Path(args.texture))
        if unwrapped is None:
            raise AvatarTexError(
                ErrorCode.NO_UV_MAP,
                error.message,
                "Pass the mesh the texture was made for: after generate --unwrap that is mesh.glb in the "
                "output folder (--mesh OUT/mesh.glb).",
            ) from None
        print(
            f"note: {Path(args.mesh).name} has no UV map; previewing {unwrapped}, "
            "which generate --unwrap wrote"
        )
        return load_mesh(unwrapped)


def _unwrapped_mesh_beside(texture: Path) -> Path | None:
    """The mesh ``generate --unwrap`` wrote for ``texture``: its report's ``unwrapped_mesh``, else a
    ``mesh.glb`` in the same folder."""
    report = texture.parent / "report.json"
    try:
        named = json.loads(report.read_text(encoding="utf-8")).get("unwrapped_mesh")
    except (OSError, ValueError, AttributeError):
        named = None
    for candidate in (named, texture.parent / "mesh.glb"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def preview_axes(mesh, facing: str = "", up: str = "", landmarker=None) -> tuple:
    """(up, forward) of a mesh for the preview, found the way ``generate`` finds them.

    Given axes win; then the mesh's own hints (a capture's ``up``/``forward``); else the face is
    searched on the mesh (``Generator.head``: the facing search and landmarks) and its head frame
    gives up (eyes above mouth) and forward (out of the face). When no face is found, the glTF
    convention (+y up, +z forward) with a note.
    """
    import numpy as np

    from .mesh import parse_axis

    up_v = parse_axis(up, "up axis") if up else None
    fwd_v = parse_axis(facing, "facing direction") if facing else None
    if up_v is None and mesh.up is not None:
        up_v = parse_axis(mesh.up, "up axis")
    if fwd_v is None and mesh.forward is not None:
        fwd_v = parse_axis(mesh.forward, "facing direction")
    if up_v is not None and fwd_v is not None:
        return up_v, fwd_v
    from .pipeline import Generator

    try:
        frame = Generator(landmarker=landmarker).head(mesh, facing).frame
    except AvatarTexError as error:
        print(f"note: {error.message} Showing it with +y up, +z forward (pass --up and --facing).")
        return up_v if up_v is not None else np.array([0.0, 1.0, 0.0]), (
            fwd_v if fwd_v is not None else np.array([0.0, 0.0, 1.0])
        )
    return (up_v if up_v is not None else frame.axes[1]), (fwd_v if fwd_v is not None else frame.axes[2])


def _preview(args) -> int:
    from . import uvtiles
    from .image_io import load_texture
    from .preview import check_out_path, check_size, render_preview

    check_size(args.size)  # before the mesh is read and its face searched: seconds
    check_out_path(args.out)
    mesh = _preview_mesh(args)
    up, forward = preview_axes(mesh, args.facing, args.up)
    if uvtiles.UDIM_TOKEN in args.texture:  # texture.<UDIM>.png: every tile generate wrote
        texture = {tile: load_texture(path) for tile, path in uvtiles.tile_files(args.texture).items()}
    else:
        texture = load_texture(args.texture)
    render_preview(mesh, texture, args.out, size=args.size, up=up, forward=forward)
    print(f"wrote {args.out}")
    return 0


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="the project's own head + a public-domain portrait -> out/demo")
    p.add_argument("--out", default="out/demo", help="output folder (created if missing)")
    p.add_argument("--style", default="photoreal", help="style preset (avatartex styles lists them)")
    p.add_argument("--size", type=int, default=1024, help="texture edge in pixels, 512-4096")
    p.add_argument("--device", default="", help="where the neural engine would run (the demo runs classic)")


def _demo(args) -> int:
    """Texture the project's own sculpted head from skimage's astronaut photo (public domain)."""
    import numpy as np
    from skimage import data

    from .demo_head import DEMO_NAME, make_demo_head, save_demo_head
    from .image_io import load_texture, save_png
    from .mesh import Mesh, load_mesh, save_capture
    from .pipeline import Generator
    from .pipeline.generator import check_params
    from .pipeline.report import check_writable
    from .preview import render_preview
    from .styles import get_style

    out = Path(args.out)
    mesh_path, portrait_path = out / "demo_head.npz", out / "portrait.png"
    params = GenerateParams(
        mesh=str(mesh_path),
        portrait=str(portrait_path),
        out_dir=str(out),
        style=args.style,
        size=args.size,
        engine="classic",
    )
    # Every argument and the folder checked before the demo's inputs are written into it.
    check_params(params)
    neural_config = _neural_config(args.device)
    get_style(params.style)
    check_out_folder(out)
    check_writable(out)
    out.mkdir(parents=True, exist_ok=True)  # the check leaves a new folder uncreated
    # The capture carries the head's landmark pins, the fallback should the detector miss its face;
    # the .glb is the same head with the texture, for opening in Blender.
    positions, triangles, uvs, pins = make_demo_head()
    save_capture(Mesh(positions, triangles, uvs, None, pins, DEMO_NAME), mesh_path)
    save_png(portrait_path, np.asarray(data.astronaut(), np.uint8))
    bar = ProgressBar()
    try:
        result = Generator(neural_config=neural_config).generate(params, bar)
    finally:
        bar.close()
    preview = out / "preview.png"
    render_preview(load_mesh(mesh_path), load_texture(result["texture"]), preview)
    save_demo_head(out / "demo_head.glb", texture=result["texture"])
    print_written(result)
    print_verdict(result["report"])
    print(f"wrote {out / 'report.json'} (what was read and done), {preview} (front, side, back)")
    print(
        f"      and {out / 'demo_head.glb'}: the demo head with the texture, to open in Blender "
        "(File > Import > glTF)"
    )
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
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    parser.add_argument(
        "--errors",
        choices=("text", "json"),
        default="text",
        help="how a failure is printed on stderr: text (default) or json, one line "
        '{"error": {"code", "message", "hint"}} for scripts; either way the exit status is 1 '
        "(2: the command line itself was wrong; 130: cancelled)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_generate(sub)
    _add_preview(sub)
    _add_demo(sub)
    sub.add_parser("styles", help="list the style presets")
    add_model_commands(sub)
    _verbose_anywhere(parser)
    return parser


def _verbose_anywhere(parser: argparse.ArgumentParser) -> None:
    """``-v`` after the command too (``avatartex generate ... -v``, as the README's synopsis has it),
    in every subcommand at any depth; not given there, it leaves the value read before the command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                command.add_argument(
                    "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
                )
                _verbose_anywhere(command)


VERBOSE_HELP = "log progress details to stderr"


CANCELLED_STATUS = 130
"""Exit status after Ctrl-C: 128 + SIGINT, what a shell reports for a command the signal stopped."""

COMMANDS = {"generate": _generate, "preview": _preview, "demo": _demo, "styles": _styles}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``avatartex`` console script and ``python -m avatartex``.

    The terminal shows the command's progress, results and typed errors; what the libraries log goes
    to the log file (``console.log_path``), or to stderr with ``--verbose``. Ctrl-C prints one line,
    ``cancelled``, and exits with 130 (a shell's status for SIGINT); a cancelled ``generate`` leaves
    the output folder as it was.
    """
    parser = build_parser()
    args = parser.parse_args(_join_axis_values(list(sys.argv[1:] if argv is None else argv)))
    handler = COMMANDS.get(args.command) or getattr(args, "handler", None)
    with library_output(args.verbose):
        try:
            return handler(args)
        except AvatarTexError as error:
            # The hint names the add-on's panel; the command line's way to pin follows it.
            pins = error.code == ErrorCode.NO_FACE_ON_MESH and args.command == "generate"
            return print_error(error, args.errors == "json", {"pins": PIN_HOW} if pins else None)
        except KeyboardInterrupt:
            print("cancelled", file=sys.stderr)
            return CANCELLED_STATUS


if __name__ == "__main__":
    sys.exit(main())
