"""``avatartex models list|download``: the neural engine's weights from the Hugging Face Hub.
``add_subcommands`` plugs them into the main parser (``cli.py``)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .console import run_subcommands


def _models(args: argparse.Namespace) -> int:
    from .engines.neural import hub
    from .engines.neural.registry import REGISTRY, default_entries

    if args.models_command == "list":
        rows = hub.status(args.cache_dir)
        print(f"{'name':22} {'cached':6} {'default':7} {'GB':>5} {'VRAM':>5}  repo@revision  licence")
        for r in rows:
            print(
                f"{r['name']:22} {'yes' if r['cached'] else 'no':6} {'yes' if r['default'] else '':7} "
                f"{r['size_gb']:5.1f} {r['vram_gb']:5.1f}  {r['repo_id']}@{r['revision']}  {r['licence']}"
            )
        print(f"cache: {hub.cache_dir(args.cache_dir)}")
        return 0
    if args.all:
        entries = list(REGISTRY.values())
    elif args.names:
        entries = [hub.get_entry(n) for n in args.names]
    else:
        entries = default_entries()
    for entry in entries:
        hub.download(entry, args.cache_dir, progress=lambda m: print(m, file=sys.stderr))
    return 0


def add_subcommands(subparsers: Any) -> None:
    """Add ``models`` to ``avatartex``'s parser."""
    p = subparsers.add_parser("models", help="list or download the neural engine's models")
    p.add_argument(
        "--cache-dir",
        default=os.environ.get("AVATARTEX_MODEL_CACHE", ""),
        help="Hugging Face cache (default: AVATARTEX_MODEL_CACHE, as generate reads it, else HF_HUB_CACHE / "
        "HF_HOME)",
    )
    msub = p.add_subparsers(dest="models_command", required=True)
    msub.add_parser("list", help="the registry, with what is downloaded")
    d = msub.add_parser("download", help="download models (default: those the default pipeline needs)")
    d.add_argument("names", nargs="*", metavar="NAME", help="registry names (see models list)")
    d.add_argument("--all", action="store_true", help="every model of the registry")
    p.set_defaults(handler=_models)


def main(argv: list[str] | None = None) -> int:
    """Run the model commands alone (``python -m avatartex.cli_models``)."""
    return run_subcommands("avatartex-models", "The neural engine's model weights.", add_subcommands, argv)


if __name__ == "__main__":
    sys.exit(main())
