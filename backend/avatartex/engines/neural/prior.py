"""StyleGAN2 prior files: safetensors with the generator's weights and its config as metadata."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from ...image_io import ordinary_file_mode
from ...protocol import AvatarTexError, ErrorCode

FORMAT = "avatartex-stylegan2-prior"
_CACHE: dict[tuple[str, float, str], Any] = {}
_LOCK = threading.Lock()


def save_prior(generator: Any, path: str | Path, extra: dict[str, str] | None = None) -> Path:
    """Write a generator as a prior file (atomic: a crash never leaves half a file)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in generator.state_dict().items()}
    meta = {"format": FORMAT, "config": json.dumps(generator.config.to_dict())}
    meta.update(extra or {})
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.chmod(tmp, ordinary_file_mode())  # safetensors writes 0600: a shared priors folder could not read it
    tmp.replace(path)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a safetensors file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_prior(path: str | Path, device: Any = "cpu") -> Any:
    """Load a prior written by ``save_prior`` (train-prior / convert-prior), cached while unchanged."""
    from safetensors.torch import load_file

    from .stylegan2 import Generator, GeneratorConfig

    path = Path(path).expanduser()
    if not path.is_file():
        raise AvatarTexError(
            ErrorCode.MODEL_MISSING,
            f"GAN prior {path} does not exist.",
            "Train one with `avatartex-tools train-prior`, convert one with `avatartex-tools convert-prior`, "
            "or leave the prior unset to use the classic stage 2.",
        )
    if path.suffix != ".safetensors":
        raise AvatarTexError(
            ErrorCode.MODEL_MISSING,
            f"GAN prior {path} is not a .safetensors file.",
            "Pickled checkpoints are never loaded directly: run `avatartex-tools convert-prior "
            "--stylegan-pkl FILE --trust-pickle --out PRIOR.safetensors` once.",
        )
    key = (str(path.resolve()), path.stat().st_mtime, str(device))
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    meta = read_metadata(path)
    if meta.get("format") != FORMAT or "config" not in meta:
        raise AvatarTexError(
            ErrorCode.MODEL_MISSING,
            f"{path} is not an AvatarTex StyleGAN2 prior.",
            "Use a file written by `avatartex-tools train-prior` or `avatartex-tools convert-prior`.",
        )
    generator = Generator(GeneratorConfig(**json.loads(meta["config"])))
    state = load_file(str(path))
    missing, unexpected = generator.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise AvatarTexError(
            ErrorCode.MODEL_MISSING,
            f"{path} does not match its own config (missing {missing[:3]}, unexpected {unexpected[:3]}).",
            "Re-export the prior.",
        )
    generator = generator.to(device).eval().requires_grad_(False)
    with _LOCK:
        _CACHE[key] = generator
    return generator
