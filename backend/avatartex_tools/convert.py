"""``convert-prior``: an official StyleGAN2-ADA / StyleGAN3-repo ``.pkl`` -> an AvatarTex prior file.

Official snapshots are pickles of classes from the official repository. ``torch_utils.persistence``
pickles every network object as a call ``_reconstruct_persistent_obj(meta)`` where ``meta`` holds
``type``, ``version``, ``module_src`` (the source text of the class's module), ``class_name`` and
``state`` (the object's ``__dict__``: ``_parameters``, ``_buffers``, ``_modules``, the constructor's
``_init_args`` / ``_init_kwargs`` and plain attributes); loading it normally *executes* that source.
This converter never does: a restricted unpickler turns every persistent object into an inert record
of its state and refuses any global outside torch, numpy, collections and the official helper names.

The architecture is read from the generator's ``_init_args`` / ``_init_kwargs``: ``z_dim``, ``c_dim``,
``w_dim``, ``img_resolution``, ``img_channels``, ``mapping_kwargs`` (``num_layers``,
``lr_multiplier``) and the synthesis arguments ``channel_base``, ``channel_max`` and ``conv_clamp``
(nested in ``synthesis_kwargs`` in StyleGAN2-ADA-PyTorch, top-level arguments in the StyleGAN3
repository's ``networks_stylegan2``). The weights are then copied by name into this project's own
``stylegan2.Generator``, whose names and maths are the official ones.

Limits (documented for users):
* Unpickling torch tensors still goes through ``torch.load`` of their storages, so a crafted file
  can still run code: hence ``--trust-pickle`` is required, and only files from trusted sources belong here.
* Only the StyleGAN2 generator converts: the "skip" architecture, the [1,3,3,1] filter, 3x3 kernels,
  noise inputs, no class conditioning. StyleGAN3 generators (alias-free, ``SynthesisInput``),
  conditional models (``c_dim > 0``) and other architectures are refused with a clear error, as is any
  constructor argument this converter does not know (it could change the maths).
* The official code runs the highest resolutions in fp16 on a GPU (``num_fp16_res``); the converted
  prior runs in fp32, so its images equal the official fp32 images (``force_fp32``) to float rounding
  and a GPU fp16 run of the official code to fp16 rounding.
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


_GENERATOR_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
# Synthesis arguments that change speed, memory layout or bookkeeping only, never the maths in fp32.
_NEUTRAL_SYNTHESIS = {
    "num_fp16_res",
    "fp16_channels_last",
    "channels_last",
    "fused_modconv_default",
    "epochs",
}
_NEUTRAL_MAPPING = {"w_avg_beta", "embed_features"}  # embed_features matters only when c_dim > 0
_OFFICIAL_FILTER = [1, 3, 3, 1]


def _refuse(message: str, hint: str = "Only the official StyleGAN2 generator converts.") -> AvatarTexError:
    return AvatarTexError(ErrorCode.BAD_REQUEST, message, hint)


def _constructor_kwargs(record: PersistentRecord) -> dict[str, Any]:
    """The generator's constructor arguments as the official persistence stores them."""
    state = record.state
    kwargs: dict[str, Any] = dict(zip(_GENERATOR_ARGS, tuple(state.get("_init_args") or ()), strict=False))
    kwargs.update(dict(state.get("_init_kwargs") or {}))
    for name in _GENERATOR_ARGS:  # the generator also keeps these as attributes
        if name not in kwargs and name in state:
            kwargs[name] = state[name]
    missing = [name for name in _GENERATOR_ARGS if kwargs.get(name) is None]
    if missing:
        raise _refuse(
            f"The snapshot's generator does not record {', '.join(missing)} (no _init_kwargs).",
            "Use a network-snapshot-*.pkl written by StyleGAN2-ADA-PyTorch or the StyleGAN3 repository.",
        )
    return kwargs


def _generator_config(record: PersistentRecord) -> Any:
    """A ``GeneratorConfig`` from the official constructor arguments; refuses what the port cannot run."""
    from avatartex.engines.neural.stylegan2 import GeneratorConfig

    if "class SynthesisInput" in record.module_src:
        raise _refuse(
            "This is a StyleGAN3 (alias-free) generator, which AvatarTex does not implement.",
            "Use a StyleGAN2(-ADA) snapshot (the StyleGAN3 repository trains those with --cfg=stylegan2).",
        )
    kwargs = _constructor_kwargs(record)
    mapping = dict(kwargs.pop("mapping_kwargs", None) or {})
    # StyleGAN2-ADA nests the synthesis arguments; the StyleGAN3 repository passes them at the top level.
    synthesis = dict(kwargs.pop("synthesis_kwargs", None) or {})
    synthesis.update({k: v for k, v in kwargs.items() if k not in _GENERATOR_ARGS})
    if int(kwargs["c_dim"]) != 0:
        raise _refuse(
            f"Class-conditional generators (c_dim = {kwargs['c_dim']}) are not supported.",
            "Stage 2 has no class labels: use an unconditional snapshot.",
        )
    w_dim = int(kwargs["w_dim"])
    checks = [
        (synthesis.pop("architecture", "skip"), "skip", "architecture"),
        (synthesis.pop("activation", "lrelu"), "lrelu", "activation"),
        (synthesis.pop("kernel_size", 3), 3, "kernel_size"),
        (synthesis.pop("use_noise", True), True, "use_noise"),
        (
            [float(v) for v in synthesis.pop("resample_filter", _OFFICIAL_FILTER)],
            _OFFICIAL_FILTER,
            "resample_filter",
        ),
        (mapping.pop("activation", "lrelu"), "lrelu", "mapping activation"),
        (mapping.pop("layer_features", None) or w_dim, w_dim, "mapping layer_features"),
    ]
    for value, expected, name in checks:
        if value != expected:
            raise _refuse(f"Generator {name} {value!r} is not supported (only {expected!r}).")
    channel_base = int(synthesis.pop("channel_base", 32768))
    channel_max = int(synthesis.pop("channel_max", 512))
    conv_clamp = synthesis.pop("conv_clamp", None)
    num_layers = int(mapping.pop("num_layers", 8))
    lr_multiplier = float(mapping.pop("lr_multiplier", 0.01))
    unknown = sorted(set(synthesis) - _NEUTRAL_SYNTHESIS) + sorted(set(mapping) - _NEUTRAL_MAPPING)
    if unknown:
        raise _refuse(
            f"The generator was built with arguments this converter does not know: {', '.join(unknown)}.",
            "They may change the network's maths; only official StyleGAN2 snapshots convert.",
        )
    return GeneratorConfig(
        resolution=int(kwargs["img_resolution"]),
        z_dim=int(kwargs["z_dim"]),
        w_dim=w_dim,
        img_channels=int(kwargs["img_channels"]),
        mapping_layers=num_layers,
        mapping_lr_mul=lr_multiplier,
        channel_base=channel_base,
        channel_max=channel_max,
        conv_clamp=None if conv_clamp is None else float(conv_clamp),
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
    # Buffers too: w_avg (truncation), noise_const (reproducible noise) and the filters are official data.
    missing = sorted(set(own) - set(loaded))
    if missing:
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST,
            f"The snapshot lacks {len(missing)} generator weights or buffers (e.g. {missing[:3]}).",
            "It is not a StyleGAN2 generator this converter knows.",
        )
    generator.load_state_dict(loaded, strict=True)
    return save_prior(
        generator,
        out_path,
        {
            "source": pkl_path.name,
            "converted_from": "stylegan2-ada-pkl",
            "config_json": json.dumps(config.to_dict()),
        },
    )
