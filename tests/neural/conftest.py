"""Fixtures of the neural-engine tests: tiny random diffusers models saved to a temp folder and loaded
back through the real ``from_pretrained`` path, an offline hub with an empty cache, and a stand-in atlas."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch", reason="the neural engine's packages (torch) are not installed")
pytest.importorskip("diffusers", reason="the neural engine's packages (diffusers) are not installed")

# The CI machine has 2 shared cores; one thread avoids oversubscription (5x faster on these tiny models).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def offline_hub(tmp_path, monkeypatch):
    """No network and an empty, private Hugging Face cache for every test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("AVATARTEX_PRIORS", str(tmp_path / "priors"))
    yield


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> SimpleNamespace:
    """Folders of a tiny SD inpainting pipeline, a tiny SD pipeline and a tiny ControlNet."""
    from avatartex_tools.tiny_models import build_controlnet_folder, build_sd_folder

    root = tmp_path_factory.mktemp("tiny_models")
    return SimpleNamespace(
        inpaint=build_sd_folder(root / "inpaint", inpaint=True),
        base=build_sd_folder(root / "base", inpaint=False),
        controlnet=build_controlnet_folder(root / "controlnet"),
    )


@pytest.fixture
def tiny_config(tiny_models):
    """A NeuralConfig running the tiny models on the CPU at a 32 px working size."""
    from avatartex.engines.neural.config import NeuralConfig

    return NeuralConfig(
        device="cpu",
        inpaint_model=str(tiny_models.inpaint),
        repaint_model=str(tiny_models.base),
        controlnet_model=str(tiny_models.controlnet),
        work_size=32,
        inpaint_steps=4,
        repaint_steps=4,
    )


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
