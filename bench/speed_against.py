"""A warm request's time against another commit's, measured alternately on the same machine.

    PYTHONPATH=backend .venv/bin/python bench/speed_against.py REV [--rounds 4] [--portrait P]

Machines of this kind differ by ±10 % from one session to the next and a shared one drifts within
minutes, so a figure measured once says little about a change. This checks ``REV`` out into a
temporary git worktree and runs ``bench/speed.py --sizes 1024 --repeats 5 --quick
--no-first-request`` there and in this tree in turn, ``--rounds`` times, each in a fresh process;
it prints each run's median new-photo and variant totals and, over the rounds, the median of each
side and of their paired differences (this tree minus ``REV``: negative is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def run_speed(tree: Path, mesh: str, portrait: str) -> dict:
    """One ``bench/speed.py`` run in ``tree`` (its own backend): the 1024² new-photo and variant
    median totals, seconds."""
    command = [
        sys.executable,
        str(tree / "bench" / "speed.py"),
        "--mesh", mesh, "--sizes", "1024", "--repeats", "5", "--quick", "--no-first-request",
    ]  # fmt: skip
    if portrait:
        command += ["--portrait", portrait]
    env = dict(os.environ, PYTHONPATH=str(tree / "backend"))
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=True)
    sizes = json.loads(done.stdout)["by_size"]["1024"]
    return {
        "new_photo": sizes["new_photo"]["total"]["wall_median"],
        "variant": sizes["variant"]["total"]["wall_median"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the commit to measure against (e.g. HEAD~3, a hash)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--mesh", default=str(ROOT.parent / "shared" / "assets" / "heads" / "lee_perry_smith.glb")
    )
    parser.add_argument("--portrait", default="", help="default: speed.py's (skimage's astronaut)")
    args = parser.parse_args(argv)
    mesh = str(Path(args.mesh).resolve())
    if not Path(mesh).exists():
        print(f"no mesh at {mesh}: pass --mesh (the scanned head lives in ../shared/assets)", file=sys.stderr)
        return 2
    portrait = str(Path(args.portrait).resolve()) if args.portrait else ""
    with tempfile.TemporaryDirectory(prefix="avatartex-against-") as work:
        other = Path(work) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(other), args.rev], cwd=ROOT, check=True
        )
        try:
            runs: dict[str, list[dict]] = {"this": [], args.rev: []}
            for round_ in range(args.rounds):
                for name, tree in ((args.rev, other), ("this", ROOT)):
                    result = run_speed(tree, mesh, portrait)
                    runs[name].append(result)
                    print(f"round {round_ + 1} {name:>12}: new photo {result['new_photo']:.3f} s, "
                          f"variant {result['variant']:.3f} s", flush=True)  # fmt: skip
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT, check=False)
    for key in ("new_photo", "variant"):
        ours = np.array([r[key] for r in runs["this"]])
        theirs = np.array([r[key] for r in runs[args.rev]])
        print(
            f"{key}: this tree {np.median(ours):.3f} s, {args.rev} {np.median(theirs):.3f} s, "
            f"paired difference median {np.median(ours - theirs):+.3f} s (min {np.min(ours - theirs):+.3f}, "
            f"max {np.max(ours - theirs):+.3f})"
        )
    print("command: python bench/speed_against.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
