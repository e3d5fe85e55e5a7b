"""``convert-prior``: an official StyleGAN2-ADA / StyleGAN3-repo ``.pkl`` -> an AvatarTex prior file.

Official snapshots are pickles of classes from the official repository (``torch_utils.persistence``
stores each network class's source code inside the pickle and rebuilds it by executing that source).
This converter never executes it: a restricted unpickler turns every persistent object into an inert
record of its state (parameters, buffers, sub-modules, constructor kwargs) and refuses any global
outside torch, numpy, collections and the official helper names. The weights are then copied by name
into this project's own ``stylegan2.Generator``, whose names mirror the official ones.

Limits (documented for users):
* Unpickling torch tensors still goes through ``torch.load`` of their storages, so a crafted file
  can still run code: hence ``--trust-pickle`` is required, and only files from trusted sources belong here.
* Only the StyleGAN2 generator architecture ("skip", no class conditioning) converts. StyleGAN3
  generators (alias-free, ``SynthesisInput``) and conditional models are refused with a clear error.
* The generator's maths follows the official code (FIR up-sampling, demodulation, noise, skip
  toRGB) but has not been compared image-for-image with the official implementation on this machine
  (no official weights can be downloaded here); check the converted prior's preview by eye.
* The discriminator is not converted (stage 2 needs only the generator).
"""

from __future__ import annotations

import json
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

from avatartex.protocol import AvatarTexError, ErrorCode

_ALLOWED_PREFIXES = ("torch", "collections", "numpy", "_codecs", "copyreg")
_SAFE_BUILTINS = {"set", "frozenset", "dict", "list", "tuple", "slice", "complex", "bytearray", "getattr"}


class PersistentRecord:
    """What a ``torch_utils.persistence`` object becomes: its class name, source and state, inert."""

    def __init__(self, meta: dict[str, Any]) -> None:
        self.class_name = str(meta.get("class_name", ""))
        self.module_src = str(meta.get("module_src", ""))
        self.state = dict(meta.get("state", {}))

    def __setstate__(self, state: dict[str, Any]) -> None:  # some versions pickle state separately
        self.state.update(state)


class _InertObject(dict):
    """Stand-in for other official helper classes (e.g. ``dnnlib.EasyDict``): keeps their data only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        if args and isinstance(args[0], dict):
            self.update(args[0])
        self.update(kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.update(state)


def _reconstruct(meta: dict[str, Any]) -> PersistentRecord:
    return PersistentRecord(meta)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "torch_utils.persistence" and name == "_reconstruct_persistent_obj":
            return _reconstruct
        if module.startswith(("dnnlib", "torch_utils", "training")):
            return _InertObject
        if module == "builtins" and name in _SAFE_BUILTINS:
            return super().find_class(module, name)
        if module.split(".")[0] in _ALLOWED_PREFIXES:
            return super().find_class(module, name)
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST,
            f"The pickle references {module}.{name}, which a StyleGAN "
            "snapshot never needs; refusing to load it.",
            "Only convert official StyleGAN2-ADA / StyleGAN3 network snapshots.",
        )


def _flatten(record: Any, prefix: str, out: dict[str, Any]) -> None:
    """Collect parameters and buffers of a record tree under dotted names."""
    state = record.state if isinstance(record, PersistentRecord) else getattr(record, "__dict__", {})
    for key in ("_parameters", "_buffers"):
        for name, value in (state.get(key) or {}).items():
            if value is not None:
                out[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            _flatten(child, f"{prefix}{name}.", out)


def _generator_config(record: PersistentRecord) -> Any:
    from avatartex.engines.neural.stylegan2 import GeneratorConfig

    if "SynthesisInput" in record.module_src or "class SynthesisInput" in record.module_src:
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST,
            "This is a StyleGAN3 (alias-free) generator, which AvatarTex does not implement.",
            "Use a StyleGAN2(-ADA) snapshot (the StyleGAN3 repository "
            "also trains those with --cfg=stylegan2).",
        )
    kwargs = dict(record.state.get("init_kwargs") or {})
    mapping = dict(kwargs.get("mapping_kwargs") or {})
    synthesis = dict(kwargs.get("synthesis_kwargs") or {})
    if int(kwargs.get("c_dim", record.state.get("c_dim", 0)) or 0) != 0:
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST,
            "Class-conditional generators (c_dim > 0) are not supported.",
            "Use an unconditional snapshot.",
        )
    if synthesis.get("architecture", "skip") != "skip":
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST,
            f"Generator architecture {synthesis.get('architecture')!r} is not supported.",
            "Only the default 'skip' generator converts.",
        )
    get = lambda key, default: kwargs.get(key, record.state.get(key, default))  # noqa: E731
    return GeneratorConfig(
        resolution=int(get("img_resolution", 256)),
        z_dim=int(get("z_dim", 512)),
        w_dim=int(get("w_dim", 512)),
        img_channels=int(get("img_channels", 3)),
        mapping_layers=int(mapping.get("num_layers", 8)),
        mapping_lr_mul=float(mapping.get("lr_multiplier", 0.01)),
        channel_base=int(synthesis.get("channel_base", 32768)),
        channel_max=int(synthesis.get("channel_max", 512)),
    )


def convert_stylegan_pkl(
    pkl_path: str | Path, out_path: str | Path, *, trust_pickle: bool = False, key: str = "G_ema"
) -> Path:
    """Convert the ``G_ema`` generator of an official snapshot into a safetensors prior."""
    import torch
    from avatartex.engines.neural.prior import save_prior
    from avatartex.engines.neural.stylegan2 import Generator

    if not trust_pickle:
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST,
            "Converting a pickle needs --trust-pickle.",
            "Pickles can run code when loaded; pass --trust-pickle only for files from a "
            "source you trust (e.g. NVIDIA's published snapshots).",
        )
    pkl_path = Path(pkl_path).expanduser()
    if not pkl_path.is_file():
        raise AvatarTexError(ErrorCode.MODEL_MISSING, f"{pkl_path} does not exist.", "Check the path.")
    with open(pkl_path, "rb") as f:
        try:
            data = _RestrictedUnpickler(f).load()
        except AvatarTexError:
            raise
        except Exception as exc:  # noqa: BLE001 - corrupt or foreign files
            raise AvatarTexError(
                ErrorCode.BAD_REQUEST,
                f"{pkl_path} is not a readable StyleGAN snapshot: {exc}.",
                "Use a network-snapshot-*.pkl from StyleGAN2-ADA-PyTorch or StyleGAN3.",
            ) from exc
    record = data.get(key) if isinstance(data, dict) else None
    if not isinstance(record, PersistentRecord) or record.class_name != "Generator":
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST,
            f"{pkl_path} has no {key} generator.",
            "Use a network-snapshot-*.pkl written by the official training script.",
        )
    config = _generator_config(record)
    tensors: dict[str, Any] = OrderedDict()
    _flatten(record, "", tensors)
    generator = Generator(config)
    own = generator.state_dict()
    loaded = {}
    for name, value in tensors.items():
        if name in own:
            value = torch.as_tensor(value).detach().float()
            if value.shape != own[name].shape:
                raise AvatarTexError(
                    ErrorCode.BAD_REQUEST,
                    f"{name}: shape {tuple(value.shape)} in the snapshot, {tuple(own[name].shape)} expected.",
                    "The snapshot's architecture differs.",
                )
            loaded[name] = value
    params = {n for n, _ in generator.named_parameters()}
    missing = sorted(params - set(loaded))
    if missing:
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST,
            f"The snapshot lacks {len(missing)} generator weights (e.g. {missing[:3]}).",
            "It is not a StyleGAN2 generator this converter knows.",
        )
    generator.load_state_dict(loaded, strict=False)
    return save_prior(
        generator,
        out_path,
        {
            "source": pkl_path.name,
            "converted_from": "stylegan2-ada-pkl",
            "config_json": json.dumps(config.to_dict()),
        },
    )
