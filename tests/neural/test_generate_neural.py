"""The neural engine end to end: ``Generator.generate(engine="neural")`` on the project's demo head
and the astronaut portrait, with tiny random models loaded through the real ``from_pretrained`` path
(offline) and a tiny StyleGAN2 prior; each stage's input and output is captured to check that it ran
and changed what it should, and ``report.json`` says what ran and why."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from avatartex.engines.neural import pipelines
from avatartex.engines.neural.config import NeuralConfig
from avatartex.engines.neural.inpaint import NeuralInpaint
from avatartex.engines.neural.latent import NeuralLatent
from avatartex.engines.neural.repaint import NeuralRepaint
from avatartex.pipeline import Generator
from avatartex.protocol import GenerateParams
from avatartex.styles import get_style

DEMO_RESOLUTION = 48
"""Marching-cubes resolution of the demo head: a few thousand triangles keep the request quick."""


@pytest.fixture(scope="module")
def demo_capture(tmp_path_factory):
    """The demo head as a mesh capture (with its landmark pins), like ``avatartex demo`` writes it."""
    from avatartex.demo_head import make_demo_head
    from avatartex.mesh import Mesh, save_capture

    positions, triangles, uvs, pins = make_demo_head(DEMO_RESOLUTION)
    path = tmp_path_factory.mktemp("demo") / "demo_head.npz"
    save_capture(Mesh(positions, triangles, uvs, None, pins, "DemoHead"), path)
    return path


@pytest.fixture(scope="module")
def tiny_prior(tmp_path_factory):
    """A tiny random StyleGAN2 generator saved as a prior file (``prior.save_prior``)."""
    import torch
    from avatartex.engines.neural.prior import save_prior
    from avatartex.engines.neural.stylegan2 import Generator as StyleGAN2
    from avatartex.engines.neural.stylegan2 import GeneratorConfig

    torch.manual_seed(0)
    config = GeneratorConfig(
        resolution=32, z_dim=32, w_dim=32, mapping_layers=2, channel_base=512, channel_max=32
    )
    return save_prior(StyleGAN2(config), tmp_path_factory.mktemp("prior") / "tiny_prior.safetensors")


@pytest.fixture(scope="module")
def generator() -> Generator:
    """One generator for the module, as in the server: the head's landmarks are found once."""
    return Generator()


@pytest.fixture
def neural_config(tiny_models, tiny_prior) -> NeuralConfig:
    """The tiny models and prior on the CPU, with the fewest steps that still run every model."""
    return NeuralConfig(
        device="cpu",
        inpaint_model=str(tiny_models.inpaint),
        repaint_model=str(tiny_models.base),
        controlnet_model=str(tiny_models.controlnet),
        prior=str(tiny_prior),
        work_size=32,
        inpaint_steps=2,
        # img2img runs int(steps * strength) of its schedule: a schedule of which photoreal runs one step.
        repaint_steps=math.ceil(1.0 / get_style("photoreal").repaint_strength),
        latent_steps=3,
    )


@pytest.fixture
def stage_calls(monkeypatch) -> list[tuple[str, object, object]]:
    """Every neural stage's ``run`` records (name, input copy, output) as the request runs it."""
    calls: list[tuple[str, object, object]] = []
    for cls in (NeuralInpaint, NeuralLatent, NeuralRepaint):

        def wrapped(self, texture, ctx, _run=cls.run):
            before = texture.copy()
            after = _run(self, texture, ctx)
            calls.append((self.name, before, after))
            return after

        monkeypatch.setattr(cls, "run", wrapped)
    return calls


def request(mesh, portrait, out, **kw) -> GenerateParams:
    return GenerateParams(
        mesh=str(mesh),
        portrait=str(portrait),
        out_dir=str(out),
        size=512,
        engine="neural",
        facing="+z",
        **kw,
    )


def test_generate_runs_all_three_neural_stages(
    generator, demo_capture, astronaut_path, neural_config, stage_calls, tmp_path
):
    pipelines.clear_cache()  # the pipelines must come through from_pretrained in this request
    generator.neural_config = neural_config
    out = tmp_path / "out"
    result = generator.generate(request(demo_capture, astronaut_path, out, style="photoreal"))
    report = json.loads((out / "report.json").read_text())
    assert report == json.loads(json.dumps(result["report"]))
    assert (out / "texture.png").is_file()
    assert pipelines.cached_count() == 2  # the inpainting pipeline and the ControlNet img2img one

    assert report["engine"] == "neural"
    stages = report["stages"]
    assert list(stages) == ["inpaint", "latent", "repaint"]
    assert all(stage["engine"] == "neural" for stage in stages.values()), stages
    assert stages["inpaint"]["reason"] == f"diffusion inpainting ({neural_config.inpaint_model}) on cpu"
    assert stages["latent"]["reason"] == "prior tiny_prior.safetensors on cpu"
    assert stages["repaint"]["reason"] == f"tile ControlNet repaint ({neural_config.controlnet_model}) on cpu"
    assert any("runs on the CPU" in w for w in report["warnings"])
    assert {"inpaint", "latent", "repaint"} <= set(report["timings"])

    assert [name for name, _, _ in stage_calls] == ["inpaint", "latent", "repaint"]
    (_, inpaint_in, inpaint_out), (_, latent_in, latent_out), (_, repaint_in, repaint_out) = stage_calls
    confidence = inpaint_in.confidence
    seen, unseen = confidence == 1.0, confidence < 0.01
    assert seen.sum() > 1000 and unseen.sum() > 1000  # the portrait backs the face, not the back of the head

    # Stage 1 keeps every texel the portrait backs fully, bit for bit, and regenerates the unseen ones.
    assert np.array_equal(inpaint_out.color[seen], inpaint_in.color[seen])
    assert np.abs(inpaint_out.color[unseen] - inpaint_in.color[unseen]).mean() > 0.1  # ~0.29 seen
    # Each stage starts from the previous one's output; the confidence map travels unchanged.
    assert np.array_equal(latent_in.color, inpaint_out.color)
    assert np.array_equal(repaint_in.color, latent_out.color)
    for texture in (inpaint_out, latent_in, latent_out, repaint_in, repaint_out):
        assert np.array_equal(texture.confidence, confidence)

    # Stage 2 puts the prior's texture where the portrait does not reach, and keeps confident texels.
    assert np.array_equal(latent_out.color[seen], latent_in.color[seen])
    assert np.abs(latent_out.color[unseen] - latent_in.color[unseen]).mean() > 0.05  # ~0.28 seen
    # Stage 3 at photoreal's strength (one denoising step of the tiny model) changes the texture.
    assert np.abs(repaint_out.color - repaint_in.color).mean() > 0.05  # ~0.25 seen
    for _, _, after in stage_calls:
        assert after.color.dtype == np.float32 and np.isfinite(after.color).all()
        assert after.color.min() >= 0.0 and after.color.max() <= 1.0


def test_without_a_prior_stage_2_is_classic_and_strength_zero_repaint_is_identity(
    generator, demo_capture, astronaut_path, neural_config, stage_calls, tmp_path
):
    generator.neural_config = dataclasses.replace(neural_config, prior="")
    out = tmp_path / "out"
    generator.generate(request(demo_capture, astronaut_path, out, style="toon", strength=0.0))
    report = json.loads((out / "report.json").read_text())
    stages = report["stages"]
    assert report["engine"] == "neural"
    assert stages["inpaint"]["engine"] == "neural" and stages["repaint"]["engine"] == "neural"
    # No prior is installed for the style (AVATARTEX_PRIORS is an empty folder): classic, and why.
    assert stages["latent"]["engine"] == "classic"
    assert stages["latent"]["reason"].startswith("no prior installed for style 'toon'")
    assert "toon.safetensors" in stages["latent"]["reason"]
    assert "train-prior" in stages["latent"]["reason"]

    assert [name for name, _, _ in stage_calls] == ["inpaint", "repaint"]
    _, repaint_in, repaint_out = stage_calls[1]
    assert np.array_equal(repaint_out.color, repaint_in.color)  # strength 0: not a texel changes
