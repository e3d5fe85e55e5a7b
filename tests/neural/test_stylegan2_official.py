"""The StyleGAN2 port against an independent statement of the official network, and conversion of a
snapshot pickled the way the official ``torch_utils/persistence.py`` pickles it.

The reference below is written from the official semantics (NVlabs stylegan2-ada-pytorch
``training/networks.py`` and ``torch_utils/ops/{upfirdn2d,conv2d_resample,bias_act}.py``), not from the
port: ``upfirdn2d`` as zero insertion, padding and an explicit sum over filter taps; ``conv2d_resample``
as the official generic route (``upfirdn2d`` then a convolution that flips the kernel when
``flip_weight=False``); modulation fused into per-sample weights, demodulation with eps 1e-8; bias,
lrelu, gain sqrt(2) and ``conv_clamp`` as ``bias_act``; the mapping net with ``normalize_2nd_moment``,
the 0.01 learning-rate multiplier and truncation with a cutoff. The parameter tree is built here from
the official constructors' names and shapes.
"""

from __future__ import annotations

import math
import pickle
import sys
import types
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from avatartex.engines.neural.prior import load_prior
from avatartex.engines.neural.stylegan2 import Generator, GeneratorConfig
from avatartex.protocol import AvatarTexError, ErrorCode
from avatartex_tools.convert import convert_stylegan_pkl

# An official-style architecture with every knob away from its default: 3 mapping layers, channel_base
# and channel_max that give 32/32/24/12 channels at 4/8/16/32 px, a conv_clamp that bites.
OFFICIAL_KWARGS = {
    "z_dim": 12,
    "c_dim": 0,
    "w_dim": 20,
    "img_resolution": 32,
    "img_channels": 3,
    "mapping_kwargs": {"num_layers": 3},
    "synthesis_kwargs": {"channel_base": 384, "channel_max": 32, "num_fp16_res": 2, "conv_clamp": 1.5},
}


# ---------------------------------------------------------------------------------------------------
# The reference: official operations written plainly.


def ref_setup_filter(taps=(1.0, 3.0, 3.0, 1.0)) -> torch.Tensor:
    """upfirdn2d.setup_filter: outer product of the taps, normalised to sum 1."""
    f = torch.tensor(taps, dtype=torch.float64)
    f = torch.outer(f, f)
    return f / f.sum()


def ref_upfirdn2d(x, f, up=1, down=1, pad=(0, 0, 0, 0), gain=1.0):
    """Upsample by zero insertion, pad (x0, x1, y0, y1), convolve with f * gain, keep every down-th."""
    n, c, h, w = x.shape
    if up > 1:
        z = torch.zeros(n, c, h * up, w * up, dtype=x.dtype)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, (pad[0], pad[1], pad[2], pad[3]))
    f = (f * gain).to(x.dtype)
    fh, fw = f.shape
    oh, ow = x.shape[2] - fh + 1, x.shape[3] - fw + 1
    out = torch.zeros(n, c, oh, ow, dtype=x.dtype)
    for i in range(fh):  # convolution: tap (i, j) of f meets sample (y + fh - 1 - i, x + fw - 1 - j)
        for j in range(fw):
            out += f[fh - 1 - i, fw - 1 - j] * x[:, :, i : i + oh, j : j + ow]
    return out[:, :, ::down, ::down]


def ref_conv2d(x, w):
    """Valid correlation, as an explicit sum over kernel taps."""
    kh, kw = w.shape[2:]
    oh, ow = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    out = torch.zeros(x.shape[0], w.shape[0], oh, ow, dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            out += torch.einsum("nihw,oi->nohw", x[:, :, i : i + oh, j : j + ow], w[:, :, i, j])
    return out


def ref_conv2d_resample(x, w, f=None, up=1, padding=0, flip_weight=True):
    """The official generic route of conv2d_resample (no down-sampling)."""
    kh, kw = w.shape[2:]
    px0 = px1 = py0 = py1 = padding
    if up > 1:
        fh, fw = f.shape
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
        x = ref_upfirdn2d(x, f, up=up, pad=(px0, px1, py0, py1), gain=up**2)
    else:
        x = F.pad(x, (px0, px1, py0, py1))
    if not flip_weight:
        w = w.flip([2, 3])
    return ref_conv2d(x, w)


def ref_modulated_conv2d(x, weight, styles, demodulate=True, up=1, padding=0, f=None, flip_weight=True):
    """Fused modulation: per-sample weights weight * style, demodulated, one conv per sample."""
    w = weight[None] * styles[:, None, :, None, None]
    if demodulate:
        w = w * (w.square().sum(dim=(2, 3, 4)) + 1e-8).rsqrt()[:, :, None, None, None]
    return torch.cat(
        [ref_conv2d_resample(x[i : i + 1], w[i], f, up, padding, flip_weight) for i in range(x.shape[0])]
    )


def ref_bias_act(x, b, act="linear", gain=1.0, clamp=None):
    """bias_act: add bias, activation, gain, clamp."""
    x = x + b[None, :, None, None]
    if act == "lrelu":
        x = torch.where(x >= 0, x, 0.2 * x)
    x = x * gain
    return x if clamp is None else x.clamp(-clamp, clamp)


def ref_fully_connected(state, prefix, x, lr_multiplier=1.0, act="linear"):
    weight, bias = state[prefix + "weight"].double(), state[prefix + "bias"].double()
    x = x @ (weight * (lr_multiplier / math.sqrt(weight.shape[1]))).T + bias * lr_multiplier
    return torch.where(x >= 0, x, 0.2 * x) * math.sqrt(2) if act == "lrelu" else x


def _channels(kw, res):
    s = kw["synthesis_kwargs"]
    return min(s["channel_base"] // res, s["channel_max"])


def _resolutions(kw):
    return [2**i for i in range(2, int(math.log2(kw["img_resolution"])) + 1)]


def ref_mapping(state, kw, z, psi=1.0, cutoff=None):
    x = z.double()
    x = x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
    for i in range(kw["mapping_kwargs"]["num_layers"]):
        x = ref_fully_connected(state, f"mapping.fc{i}.", x, 0.01, "lrelu")
    num_ws = 2 * len(_resolutions(kw))
    ws = x[:, None].repeat(1, num_ws, 1)
    if psi != 1.0:
        w_avg = state["mapping.w_avg"].double()
        cut = num_ws if cutoff is None else cutoff
        ws[:, :cut] = w_avg + psi * (ws[:, :cut] - w_avg)
    return ws


def ref_synthesis_layer(state, prefix, x, w, up, clamp):
    styles = ref_fully_connected(state, prefix + "affine.", w)
    f = state[prefix + "resample_filter"].double()
    x = ref_modulated_conv2d(
        x, state[prefix + "weight"].double(), styles, True, up, 1, f, flip_weight=(up == 1)
    )
    x = x + state[prefix + "noise_const"].double() * state[prefix + "noise_strength"].double()
    return ref_bias_act(x, state[prefix + "bias"].double(), "lrelu", math.sqrt(2), clamp)


def ref_synthesis(state, kw, ws):
    """Every block's (features, image) and the image, with constant noise (noise_mode='const')."""
    clamp = kw["synthesis_kwargs"].get("conv_clamp")
    x = img = None
    blocks = []
    for index, res in enumerate(_resolutions(kw)):
        p = f"synthesis.b{res}."
        w = ws[:, 2 * index - 1 if res > 4 else 0 :]
        if res == 4:
            x = state[p + "const"].double()[None].repeat(ws.shape[0], 1, 1, 1)
            x = ref_synthesis_layer(state, p + "conv1.", x, w[:, 0], 1, clamp)
            w_rgb = w[:, 1]
        else:
            x = ref_synthesis_layer(state, p + "conv0.", x, w[:, 0], 2, clamp)
            x = ref_synthesis_layer(state, p + "conv1.", x, w[:, 1], 1, clamp)
            w_rgb = w[:, 2]
            img = ref_upfirdn2d(img, state[p + "resample_filter"].double(), up=2, pad=(2, 1, 2, 1), gain=4)
        weight = state[p + "torgb.weight"].double()
        styles = ref_fully_connected(state, p + "torgb.affine.", w_rgb) / math.sqrt(weight.shape[1])
        y = ref_modulated_conv2d(x, weight, styles, demodulate=False)
        y = ref_bias_act(y, state[p + "torgb.bias"].double(), clamp=clamp)
        img = y if img is None else img + y
        blocks.append((x, img))
    return blocks


def official_state(kw, seed=0) -> dict[str, torch.Tensor]:
    """Random weights under the official names and shapes (biases, noise strengths and w_avg non-zero so
    that every term counts)."""
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    state: dict[str, torch.Tensor] = {}
    z_dim, w_dim = kw["z_dim"], kw["w_dim"]
    for i in range(kw["mapping_kwargs"]["num_layers"]):
        state[f"mapping.fc{i}.weight"] = rnd(w_dim, z_dim if i == 0 else w_dim) / 0.01
        state[f"mapping.fc{i}.bias"] = 10 * rnd(w_dim)  # x lr_multiplier 0.01 at run time
    state["mapping.w_avg"] = rnd(w_dim)
    fir = ref_setup_filter().float()
    for res in _resolutions(kw):
        p, out_ch = f"synthesis.b{res}.", _channels(kw, res)
        layers = [("conv1", out_ch)] if res == 4 else [("conv0", _channels(kw, res // 2)), ("conv1", out_ch)]
        if res == 4:
            state[p + "const"] = rnd(out_ch, 4, 4)
        state[p + "resample_filter"] = fir.clone()
        for name, in_ch in layers:
            q = f"{p}{name}."
            state[q + "resample_filter"] = fir.clone()
            state[q + "affine.weight"] = rnd(in_ch, w_dim)
            state[q + "affine.bias"] = 1 + 0.2 * rnd(in_ch)
            state[q + "weight"] = rnd(out_ch, in_ch, 3, 3)
            state[q + "noise_const"] = rnd(res, res)
            state[q + "noise_strength"] = 0.3 * rnd(())
            state[q + "bias"] = 0.2 * rnd(out_ch)
        state[p + "torgb.affine.weight"] = rnd(out_ch, w_dim)
        state[p + "torgb.affine.bias"] = 1 + 0.2 * rnd(out_ch)
        state[p + "torgb.weight"] = rnd(kw["img_channels"], out_ch, 1, 1)
        state[p + "torgb.bias"] = 0.2 * rnd(kw["img_channels"])
    return state


def _port(kw, state) -> Generator:
    s = kw["synthesis_kwargs"]
    config = GeneratorConfig(
        resolution=kw["img_resolution"],
        z_dim=kw["z_dim"],
        w_dim=kw["w_dim"],
        img_channels=kw["img_channels"],
        mapping_layers=kw["mapping_kwargs"]["num_layers"],
        channel_base=s["channel_base"],
        channel_max=s["channel_max"],
        conv_clamp=s.get("conv_clamp"),
    )
    generator = Generator(config).eval().requires_grad_(False)
    generator.load_state_dict(state, strict=True)
    return generator


def _port_blocks(generator, ws):
    """Every synthesis block's (features, image) from the port, through forward hooks."""
    outputs = []
    hooks = [
        getattr(generator.synthesis, f"b{res}").register_forward_hook(lambda m, i, o: outputs.append(o))
        for res in generator.synthesis.resolutions
    ]
    try:
        image = generator.synthesis(ws.float(), noise_mode="const")
    finally:
        for hook in hooks:
            hook.remove()
    return outputs, image


def _max_difference(port_blocks, ref_blocks):
    """Largest |port - reference| over every block's features and image."""
    return max(
        float((a.double() - b).abs().max())
        for (x, img), (rx, rimg) in zip(port_blocks, ref_blocks, strict=True)
        for a, b in ((x, rx), (img, rimg))
    )


# ---------------------------------------------------------------------------------------------------
# The reference itself.


def test_reference_up_sampling_conv_equals_the_official_transposed_route():
    """conv2d_resample(up=2, padding=1, flip_weight=False) takes the official fast route: a stride-2
    transposed convolution with the (in, out)-transposed, unflipped kernel, then the FIR filter with
    padding (1, 1) and gain 4. The reference's generic route (zero insertion, pad (3, 2), FIR, flipped
    kernel) must give the same: this pins the padding and the flip the port is checked against."""
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(2, 5, 6, 6, generator=g).double(), torch.randn(4, 5, 3, 3, generator=g).double()
    f = ref_setup_filter()
    generic = ref_conv2d_resample(x, w, f, up=2, padding=1, flip_weight=False)
    fast = F.conv_transpose2d(x, w.transpose(0, 1), stride=2)
    fast = ref_upfirdn2d(fast, f, pad=(1, 1, 1, 1), gain=4)
    assert generic.shape == (2, 4, 12, 12)
    assert torch.allclose(generic, fast, atol=1e-10)
    # ...and the flip matters: the correlating variant differs by O(1).
    assert float((ref_conv2d_resample(x, w, f, up=2, padding=1, flip_weight=True) - fast).abs().max()) > 0.5


# ---------------------------------------------------------------------------------------------------
# The port against the reference.


@pytest.mark.parametrize("conv_clamp", [None, 1.5])
def test_port_matches_the_official_network_block_by_block(conv_clamp):
    kw = {
        **OFFICIAL_KWARGS,
        "synthesis_kwargs": {**OFFICIAL_KWARGS["synthesis_kwargs"], "conv_clamp": conv_clamp},
    }
    state = official_state(kw)
    generator = _port(kw, state)
    z = torch.randn(3, kw["z_dim"], generator=torch.Generator().manual_seed(2))
    ref_ws = ref_mapping(state, kw, z)
    with torch.no_grad():
        ws = generator.mapping(z)
        assert float((ws.double() - ref_ws).abs().max()) < 1e-4
        blocks, image = _port_blocks(generator, ref_ws)
    ref_blocks = ref_synthesis(state, kw, ref_ws)
    assert _max_difference(blocks, ref_blocks) < 1e-4
    assert image.shape == (3, 3, 32, 32) and float(ref_blocks[-1][1].abs().max()) > 1.0  # not trivially small
    if conv_clamp is not None:  # the clamp is active somewhere, so it is tested
        assert any(bool((x.abs() >= conv_clamp - 1e-9).any()) for x, _ in ref_blocks)


def test_port_truncation_matches_the_official_mapping():
    state = official_state(OFFICIAL_KWARGS, seed=3)
    generator = _port(OFFICIAL_KWARGS, state)
    z = torch.randn(2, 12, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        for psi, cutoff in ((0.6, None), (0.6, 4), (1.0, None)):
            ref = ref_mapping(state, OFFICIAL_KWARGS, z, psi, cutoff)
            port = generator.mapping(z, truncation_psi=psi, truncation_cutoff=cutoff)
            assert float((port.double() - ref).abs().max()) < 1e-4
        image = generator(z, truncation_psi=0.6, noise_mode="const")
    ref_image = ref_synthesis(state, OFFICIAL_KWARGS, ref_mapping(state, OFFICIAL_KWARGS, z, 0.6))[-1][1]
    assert float((image.double() - ref_image).abs().max()) < 1e-4


# ---------------------------------------------------------------------------------------------------
# A snapshot pickled as torch_utils.persistence pickles it.

MODULE_SRC = '''"""Stand-in for training/networks.py: the converter reads this text, it never runs it."""
import torch
from torch_utils import persistence

@persistence.persistent_class
class MappingNetwork(torch.nn.Module): ...

@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module): ...

@persistence.persistent_class
class Generator(torch.nn.Module): ...
'''


def _official_pickle(kw: dict, state: dict[str, torch.Tensor], layout: str = "stylegan2-ada") -> bytes:
    """``{"G": ..., "D": None, "G_ema": ..., "augment_pipe": None}`` where every network object pickles as
    ``torch_utils.persistence._reconstruct_persistent_obj(meta)``; ``meta["state"]`` is the module's
    ``__dict__`` (``_parameters``, ``_buffers``, ``_modules``, hooks, ``_init_args``, ``_init_kwargs`` and
    attributes, some numpy scalars), the kwargs are ``dnnlib.EasyDict``s, as the official training
    builds them. ``layout="stylegan3"`` passes the synthesis arguments at the top level, as the StyleGAN3
    repository's ``networks_stylegan2.Generator`` takes them."""
    persistence = types.ModuleType("torch_utils.persistence")
    torch_utils = types.ModuleType("torch_utils")
    torch_utils.persistence = persistence
    dnnlib = types.ModuleType("dnnlib")
    dnnlib_util = types.ModuleType("dnnlib.util")
    dnnlib.util = dnnlib_util

    def _reconstruct_persistent_obj(meta):  # only its name goes into the pickle
        raise AssertionError("never called by the converter")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    dnnlib_util.EasyDict = EasyDict

    class Persistent:
        def __init__(self, class_name: str, prefix: str, children: dict, init_kwargs: dict, **attributes):
            direct = lambda names: OrderedDict(  # noqa: E731
                (n, torch.nn.Parameter(state[prefix + n], requires_grad=False))
                for n in names
                if prefix + n in state
            )
            self.meta = {
                "type": "class",
                "version": 6,
                "module_src": MODULE_SRC,
                "class_name": class_name,
                "state": {
                    "training": False,
                    "_parameters": direct(["weight", "bias", "const", "noise_strength"]),
                    "_buffers": OrderedDict(
                        (n, state[prefix + n])
                        for n in ("resample_filter", "noise_const", "w_avg")
                        if prefix + n in state
                    ),
                    "_non_persistent_buffers_set": set(),
                    "_backward_hooks": OrderedDict(),
                    "_forward_hooks": OrderedDict(),
                    "_forward_pre_hooks": OrderedDict(),
                    "_state_dict_hooks": OrderedDict(),
                    "_load_state_dict_pre_hooks": OrderedDict(),
                    "_modules": OrderedDict(children),
                    "_init_args": (),
                    "_init_kwargs": init_kwargs,
                    **attributes,
                },
            }

        def __reduce__(self):
            return (_reconstruct_persistent_obj, (self.meta,))

    def fc(prefix, lr_multiplier=1.0, activation="linear"):
        weight = state[prefix + "weight"]
        return Persistent(
            "FullyConnectedLayer",
            prefix,
            {},
            {"activation": activation, "lr_multiplier": lr_multiplier},
            activation=activation,
            weight_gain=np.float64(lr_multiplier / np.sqrt(weight.shape[1])),
            bias_gain=lr_multiplier,
        )

    synthesis_kwargs = EasyDict(kw["synthesis_kwargs"])
    clamp = synthesis_kwargs.get("conv_clamp")
    blocks = OrderedDict()
    resolutions = _resolutions(kw)
    for res in resolutions:
        p = f"synthesis.b{res}."
        children = OrderedDict()
        for name in ("conv0", "conv1"):
            if p + name + ".weight" in state:
                children[name] = Persistent(
                    "SynthesisLayer",
                    f"{p}{name}.",
                    {"affine": fc(f"{p}{name}.affine.")},
                    {
                        "w_dim": kw["w_dim"],
                        "resolution": res,
                        "up": 2 if name == "conv0" else 1,
                        "conv_clamp": clamp,
                    },
                    resolution=res,
                    up=2 if name == "conv0" else 1,
                    use_noise=True,
                    activation="lrelu",
                    conv_clamp=clamp,
                    padding=1,
                    act_gain=np.float64(np.sqrt(2)),
                )
        children["torgb"] = Persistent(
            "ToRGBLayer", p + "torgb.", {"affine": fc(p + "torgb.affine.")}, {}, conv_clamp=clamp
        )
        blocks[f"b{res}"] = Persistent(
            "SynthesisBlock",
            p,
            children,
            {},
            resolution=res,
            architecture="skip",
            is_last=res == resolutions[-1],
        )
    mapping_layers = kw["mapping_kwargs"]["num_layers"]
    mapping = Persistent(
        "MappingNetwork",
        "mapping.",
        {f"fc{i}": fc(f"mapping.fc{i}.", 0.01, "lrelu") for i in range(mapping_layers)},
        {},
        num_layers=mapping_layers,
        w_avg_beta=0.995,
    )
    synthesis = Persistent("SynthesisNetwork", "synthesis.", blocks, {}, img_resolution=kw["img_resolution"])
    init_kwargs = EasyDict(kw, mapping_kwargs=EasyDict(kw["mapping_kwargs"]))
    if layout == "stylegan3":
        del init_kwargs["synthesis_kwargs"]
        init_kwargs.update(synthesis_kwargs)
    else:
        init_kwargs["synthesis_kwargs"] = synthesis_kwargs
    attributes = {k: kw[k] for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")}
    generator = Persistent(
        "Generator",
        "",
        {"synthesis": synthesis, "mapping": mapping},
        init_kwargs,
        num_ws=2 * len(resolutions),
        **attributes,
    )
    data = {"G": generator, "D": None, "G_ema": generator, "augment_pipe": None, "training_set_kwargs": None}
    fakes = {
        "torch_utils": torch_utils,
        "torch_utils.persistence": persistence,
        "dnnlib": dnnlib,
        "dnnlib.util": dnnlib_util,
    }
    sys.modules.update(fakes)
    try:
        return pickle.dumps(data)
    finally:
        for name in fakes:
            del sys.modules[name]


@pytest.mark.parametrize("layout", ["stylegan2-ada", "stylegan3"])
def test_converted_official_snapshot_honours_the_architecture_and_gives_the_official_images(tmp_path, layout):
    state = official_state(OFFICIAL_KWARGS, seed=5)
    pkl = tmp_path / "network-snapshot-000200.pkl"
    pkl.write_bytes(_official_pickle(OFFICIAL_KWARGS, state, layout))
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules  # no official code here
    prior = load_prior(convert_stylegan_pkl(pkl, tmp_path / "prior.safetensors", trust_pickle=True))
    assert prior.config == GeneratorConfig(
        resolution=32,
        z_dim=12,
        w_dim=20,
        img_channels=3,
        mapping_layers=3,
        channel_base=384,
        channel_max=32,
        conv_clamp=1.5,
    )
    assert [getattr(prior.synthesis, f"b{r}").conv1.weight.shape[0] for r in (4, 8, 16, 32)] == [
        32,
        32,
        24,
        12,
    ]
    z = torch.randn(2, 12, generator=torch.Generator().manual_seed(6))
    ref_ws = ref_mapping(state, OFFICIAL_KWARGS, z, psi=0.7)
    ref_image = ref_synthesis(state, OFFICIAL_KWARGS, ref_ws)[-1][1]
    with torch.no_grad():
        image = prior(z, truncation_psi=0.7, noise_mode="const")
    assert float((image.double() - ref_image).abs().max()) < 1e-4


def _refusal(tmp_path, kw, layout="stylegan2-ada") -> AvatarTexError:
    pkl = tmp_path / "g.pkl"
    pkl.write_bytes(_official_pickle(kw, official_state(kw), layout))
    with pytest.raises(AvatarTexError) as err:
        convert_stylegan_pkl(pkl, tmp_path / "p.safetensors", trust_pickle=True)
    assert err.value.code == ErrorCode.BAD_REQUEST and not (tmp_path / "p.safetensors").exists()
    return err.value


def test_converter_refuses_what_the_port_cannot_run(tmp_path):
    synthesis = OFFICIAL_KWARGS["synthesis_kwargs"]
    assert "c_dim = 10" in _refusal(tmp_path, {**OFFICIAL_KWARGS, "c_dim": 10}).message
    resnet = {**OFFICIAL_KWARGS, "synthesis_kwargs": {**synthesis, "architecture": "resnet"}}
    assert "'resnet'" in _refusal(tmp_path, resnet).message
    unknown = {**OFFICIAL_KWARGS, "synthesis_kwargs": {**synthesis, "magnitude_ema_beta": 0.99}}
    assert "magnitude_ema_beta" in _refusal(tmp_path, unknown, layout="stylegan3").message
