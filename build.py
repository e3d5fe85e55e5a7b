"""Build the installable AvatarTex extension zip with Blender's own extension tooling.

The zip holds the add-on (``avatartex_addon/*`` at its root), ``blender_manifest.toml``, and a copy
of the backend's *source* (``backend/avatartex`` and ``backend/requirements.txt``) so the add-on can
start the backend and create its managed environment. It never holds torch, wheels or model weights.

Usage::

    python build.py                 # validate + build dist/avatartex-<version>.zip
    python build.py --output x.zip  # somewhere else

Blender's ``blender_ext.py`` ships inside the ``bpy`` wheel; it is found without importing ``bpy``
(importing it would start Blender) and run with the same interpreter.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON_DIR = ROOT / "avatartex_addon"
MANIFEST = ROOT / "blender_manifest.toml"
BACKEND_PACKAGE = ROOT / "backend" / "avatartex"
BACKEND_REQUIREMENTS = ROOT / "backend" / "requirements.txt"
NEURAL_REQUIREMENTS = ROOT / "backend" / "requirements-neural.txt"

# Never shipped: caches, tests, editor droppings.
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "tests", ".pytest_cache", "*.egg-info")


def find_blender_ext() -> Path:
    """Locate ``blender_ext.py`` inside the installed ``bpy`` package (any Blender version)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "build.py: the 'bpy' package is not installed in this Python "
            f"({sys.executable}); pip install bpy==5.0.1 or pass --blender-ext."
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if found:
            return found[-1]
    raise SystemExit("build.py: blender_ext.py not found inside the bpy package; pass --blender-ext.")


def manifest_version() -> str:
    """The extension version from ``blender_manifest.toml``."""
    with MANIFEST.open("rb") as fh:
        return str(tomllib.load(fh)["version"])


def stage(dest: Path) -> Path:
    """Copy everything that goes into the zip into ``dest`` and return it."""
    shutil.copytree(ADDON_DIR, dest, ignore=_IGNORE)
    shutil.copy2(MANIFEST, dest / "blender_manifest.toml")
    backend = dest / "backend"
    backend.mkdir()
    shutil.copytree(BACKEND_PACKAGE, backend / "avatartex", ignore=_IGNORE)
    if NEURAL_REQUIREMENTS.is_file():
        # The managed environment offers the neural engine's packages as an explicit choice.
        shutil.copy2(NEURAL_REQUIREMENTS, backend / "requirements-neural.txt")
    if BACKEND_REQUIREMENTS.is_file():
        shutil.copy2(BACKEND_REQUIREMENTS, backend / "requirements.txt")
    else:
        # The add-on reports this clearly when the artist tries to create the managed environment.
        print(
            f"build.py: warning: {BACKEND_REQUIREMENTS} is missing; the managed environment "
            "cannot be created from this build",
            file=sys.stderr,
        )
    return dest


def run_blender_ext(blender_ext: Path, *args: str) -> None:
    """Run one ``blender_ext.py`` sub-command, failing the build on a non-zero exit."""
    cmd = [sys.executable, str(blender_ext), *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    output = (result.stdout + result.stderr).strip()
    if output:
        print(output)
    if result.returncode != 0:
        raise SystemExit(f"build.py: {' '.join(args[:1])} failed (exit {result.returncode})")


def build(output: Path | None = None, blender_ext: Path | None = None) -> Path:
    """Validate and build the extension zip; returns its path."""
    blender_ext = blender_ext or find_blender_ext()
    output = (output or ROOT / "dist" / f"avatartex-{manifest_version()}.zip").resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="avatartex-build-") as tmp:
        source = stage(Path(tmp) / "avatartex")
        run_blender_ext(blender_ext, "validate", str(source))
        tmp_zip = Path(tmp) / output.name
        run_blender_ext(blender_ext, "build", "--source-dir", str(source), "--output-filepath", str(tmp_zip))
        # Replace the old zip only once the new one is complete.
        shutil.move(str(tmp_zip), output)
    return output


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="zip to write (default dist/avatartex-<version>.zip)")
    parser.add_argument("--blender-ext", type=Path, help="path of blender_ext.py (default: from bpy)")
    args = parser.parse_args(argv)
    print(build(args.output, args.blender_ext))
    return 0


if __name__ == "__main__":
    sys.exit(main())
