"""convert-prior from an official-style pickle (built here, without the official code) and ONNX export."""

from __future__ import annotations

import pickle
import sys
import types
from collections import OrderedDict

import numpy as np
import pytest
import torch
from avatartex.engines.neural.prior import load_prior
from avatartex.engines.neural.stylegan2 import Generator, GeneratorConfig
from avatartex.protocol import AvatarTexError, ErrorCode
from avatartex_tools.convert import convert_stylegan_pkl

TINY = GeneratorConfig(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16)
SG2_SOURCE = "class MappingNetwork: ...\nclass SynthesisNetwork: ...\nclass Generator: ..."
SG3_SOURCE = "class SynthesisInput: ...\nclass SynthesisNetwork: ...\nclass Generator: ..."


def _official_like_pickle(generator: Generator, source: str = SG2_SOURCE, extra_global=None) -> bytes:
    """Pickle ``generator`` the way torch_utils.persistence does: every module becomes a call of
    ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with its class name, source and state
    (the constructor's arguments under ``_init_args`` / ``_init_kwargs``). The fuller official layout,
    checked against an independent reference, is in test_stylegan2_official.py."""
    persistence = types.ModuleType("torch_utils.persistence")
    package = types.ModuleType("torch_utils")
    package.persistence = persistence

    def _reconstruct_persistent_obj(meta):  # never called here: only its name goes into the pickle
        raise AssertionError

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class Persistent:
        def __init__(self, module: torch.nn.Module, name: str, kwargs: dict) -> None:
            self.meta = {
                "type": "class",
                "version": 4,
                "module_src": source,
                "class_name": name,
                "state": {
                    "_parameters": OrderedDict(module._parameters),
                    "_buffers": OrderedDict(module._buffers),
                    "_modules": OrderedDict(
                        (k, Persistent(m, type(m).__name__, {})) for k, m in module._modules.items()
                    ),
                    "training": False,
                    "_init_args": (),
                    "_init_kwargs": kwargs,
                },
            }

        def __reduce__(self):
            return (_reconstruct_persistent_obj, (self.meta,))

    kwargs = {
        "z_dim": TINY.z_dim,
        "c_dim": 0,
        "w_dim": TINY.w_dim,
        "img_resolution": TINY.resolution,
        "img_channels": 3,
        "mapping_kwargs": {"num_layers": TINY.mapping_layers},
        "synthesis_kwargs": {
            "channel_base": TINY.channel_base,
            "channel_max": TINY.channel_max,
            "architecture": "skip",
        },
    }
    data = {"G": None, "D": None, "G_ema": Persistent(generator, "Generator", kwargs), "augment_pipe": None}
    if extra_global is not None:
        data["payload"] = extra_global
    sys.modules["torch_utils"], sys.modules["torch_utils.persistence"] = package, persistence
    try:
        return pickle.dumps(data)
    finally:
        del sys.modules["torch_utils"], sys.modules["torch_utils.persistence"]


def test_convert_official_style_pickle_reproduces_the_generator(tmp_path):
    torch.manual_seed(0)
    generator = Generator(TINY).eval()
    with torch.no_grad():
        generator.mapping.w_avg.normal_()
    pkl = tmp_path / "network-snapshot-000100.pkl"
    pkl.write_bytes(_official_like_pickle(generator))
    assert "torch_utils" not in sys.modules  # the converter runs without the official code
    out = convert_stylegan_pkl(pkl, tmp_path / "prior.safetensors", trust_pickle=True)
    prior = load_prior(out)
    assert prior.config == TINY
    z = torch.randn(2, 16)
    with torch.no_grad():
        assert torch.allclose(prior(z, noise_mode="const"), generator(z, noise_mode="const"), atol=1e-6)
        assert torch.equal(prior.mapping.w_avg, generator.mapping.w_avg)


def test_convert_needs_the_trust_flag_and_refuses_foreign_globals_and_stylegan3(tmp_path):
    torch.manual_seed(0)
    pkl = tmp_path / "g.pkl"
    pkl.write_bytes(_official_like_pickle(Generator(TINY)))
    with pytest.raises(AvatarTexError) as err:
        convert_stylegan_pkl(pkl, tmp_path / "p.safetensors")
    assert "--trust-pickle" in err.value.message and not (tmp_path / "p.safetensors").exists()

    pkl.write_bytes(_official_like_pickle(Generator(TINY), extra_global=print))  # builtins.print: not allowed
    with pytest.raises(AvatarTexError) as err:
        convert_stylegan_pkl(pkl, tmp_path / "p.safetensors", trust_pickle=True)
    assert "builtins.print" in err.value.message

    pkl.write_bytes(_official_like_pickle(Generator(TINY), source=SG3_SOURCE))
    with pytest.raises(AvatarTexError) as err:
        convert_stylegan_pkl(pkl, tmp_path / "p.safetensors", trust_pickle=True)
    assert "StyleGAN3" in err.value.message and err.value.code == ErrorCode.BAD_REQUEST


def test_pickles_are_never_loaded_as_priors(tmp_path):
    path = tmp_path / "prior.pkl"
    path.write_bytes(b"\x80\x04N.")
    with pytest.raises(AvatarTexError) as err:
        load_prior(path)
    assert "convert-prior" in err.value.hint


def _exported(tmp_path):
    from avatartex.engines.neural.prior import save_prior
    from avatartex_tools.onnx_export import export_synthesis

    torch.manual_seed(0)
    generator = Generator(TINY).eval()
    prior = save_prior(generator, tmp_path / "prior.safetensors")
    return generator, export_synthesis(prior, tmp_path / "synthesis.onnx")


def test_onnx_export_explains_the_separate_environment_when_onnx_is_absent(tmp_path):
    try:
        import onnx  # noqa: F401
    except ImportError:
        with pytest.raises(AvatarTexError) as err:
            _exported(tmp_path)
        assert err.value.code == ErrorCode.ENGINE_UNAVAILABLE and "separate environment" in err.value.hint
    else:
        pytest.skip("onnx is installed here; the export itself is tested below")


def test_onnx_export_matches_torch(tmp_path):
    pytest.importorskip(
        "onnx", reason="onnx is not installed (it breaks mediapipe; export runs in its own env)"
    )
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    from avatartex_tools.onnx_export import OnnxSynthesis

    generator, path = _exported(tmp_path)
    ws = generator.mapping(torch.randn(2, 16)).detach()
    with torch.no_grad():
        expected = (
            ((generator.synthesis(ws, noise_mode="const").clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()
        )
    assert np.allclose(OnnxSynthesis(path)(ws.numpy()), expected, atol=1e-4)


def test_a_prior_file_is_readable_by_others(tmp_path):
    """``avatartex-tools train-prior`` wrote prior.safetensors 0600 (safetensors' writer): copied into a
    studio's shared priors folder, no other user could load it. It gets an ordinary file's mode."""
    import os
    import stat

    from avatartex.engines.neural.prior import save_prior

    mask = os.umask(0o022)
    try:
        prior = save_prior(Generator(TINY).eval(), tmp_path / "prior.safetensors")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(prior.stat().st_mode) == 0o644
