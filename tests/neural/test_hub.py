"""Model registry, hub look-ups offline, typed errors, the models CLI and engine selection."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
from avatartex.engines.neural import available, build_stages, hub
from avatartex.engines.neural.config import NeuralConfig
from avatartex.engines.neural.registry import REGISTRY, default_entries, get_entry
from avatartex.protocol import AvatarTexError, ErrorCode
from neural_helpers import make_style


def _fake_snapshot(entry, commit: str, complete: bool = True) -> Path:
    """Lay out a Hugging Face cache entry the way huggingface_hub does (refs + snapshots)."""
    repo = hub.cache_dir() / ("models--" + entry.repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    for f in entry.files:
        if complete or not f.endswith(".safetensors"):
            path = snap / f.replace("*", "tokenizer.json")
            path.parent.mkdir(parents=True, exist_ok=True)
            # A weights file with no tensors: an 8-byte header length, then its empty table.
            path.write_bytes(b"\x02" + bytes(7) + b"{}" if f.endswith(".safetensors") else b"{}")
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / entry.revision).write_text(commit)
    return snap


def test_registry_names_the_issue_models_and_only_safetensors():
    repos = {e.repo_id for e in REGISTRY.values()}
    assert {
        "stable-diffusion-v1-5/stable-diffusion-inpainting",
        "diffusers/stable-diffusion-xl-1.0-inpainting-0.1",
        "lllyasviel/control_v11f1e_sd15_tile",
        "h94/IP-Adapter",
    } <= repos
    for entry in REGISTRY.values():
        assert entry.revision, entry.name
        weights = [f for f in entry.files if not f.endswith((".json", ".txt", "/*"))]
        assert weights and all(f.endswith(".safetensors") for f in weights), entry.files
        assert not any(f.endswith((".bin", ".ckpt", ".pt", ".pkl")) for f in entry.files)
        assert entry.licence and entry.vram_gb > 0 and entry.native_size in (512, 1024)
    assert {e.stage for e in default_entries()} == {"inpaint", "repaint"}


def test_offline_missing_model_names_repo_and_download_command():
    with pytest.raises(AvatarTexError) as err:
        hub.resolve("sd15-inpaint")
    assert err.value.code == ErrorCode.MODEL_MISSING
    assert "stable-diffusion-v1-5/stable-diffusion-inpainting" in err.value.message
    assert "HF_HUB_OFFLINE" in err.value.message
    assert "avatartex models download sd15-inpaint" in err.value.hint


def test_unknown_model_name_lists_known_ones():
    with pytest.raises(AvatarTexError) as err:
        get_entry("sd99")
    assert err.value.code == ErrorCode.MODEL_MISSING and "sd15-inpaint" in err.value.hint


def test_download_refuses_when_offline():
    with pytest.raises(AvatarTexError) as err:
        hub.download(get_entry("controlnet-tile-sd15"))
    assert err.value.code == ErrorCode.MODEL_MISSING and "HF_HUB_OFFLINE" in err.value.message


def test_cached_snapshot_resolves_offline_under_hf_home(tmp_path):
    entry = get_entry("controlnet-tile-sd15")
    snap = _fake_snapshot(entry, "a" * 40)
    assert str(hub.cache_dir()).startswith(os.environ["HF_HOME"])
    assert hub.resolve(entry.name) == snap
    # The lock file written at download time pins later loads to the commit that was fetched.
    newer = _fake_snapshot(entry, "b" * 40)
    hub._write_lock(hub.cache_dir(), entry, "a" * 40)
    assert hub.resolve(entry.name) == snap != newer
    rows = {r["name"]: r for r in hub.status()}
    assert rows[entry.name]["cached"] and not rows["sd15-inpaint"]["cached"]


def test_incomplete_snapshot_counts_as_missing():
    entry = get_entry("controlnet-tile-sd15")
    _fake_snapshot(entry, "c" * 40, complete=False)
    with pytest.raises(AvatarTexError) as err:
        hub.resolve(entry.name)
    assert err.value.code == ErrorCode.MODEL_MISSING


def test_local_folder_bypasses_registry(tmp_path):
    assert hub.resolve(str(tmp_path)) == tmp_path


def _parser() -> argparse.ArgumentParser:
    from avatartex.cli_models import add_subcommands
    from avatartex_tools.cli import add_subcommands as add_tools

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    add_subcommands(sub)
    add_tools(sub)
    return parser


def test_models_cli_list_and_offline_download(capsys):
    args = _parser().parse_args(["models", "list"])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in REGISTRY) and "lllyasviel/control_v11f1e_sd15_tile@main" in out
    args = _parser().parse_args(["models", "download", "sd15"])
    with pytest.raises(AvatarTexError) as err:
        args.handler(args)
    assert err.value.code == ErrorCode.MODEL_MISSING
    for argv in (
        ["models", "download", "--all"],
        ["train-prior", "--textures", "x", "--out", "y"],
        ["convert-prior", "--stylegan-pkl", "a.pkl", "--trust-pickle", "--out", "b"],
    ):
        assert _parser().parse_args(argv).handler is not None


def test_available_says_why_not_on_this_machine():
    import torch

    ok, reason = available()
    if not torch.cuda.is_available():
        assert not ok and ("GPU" in reason or "CUDA" in reason)
    else:
        assert ok or "models download" in reason


def _plan(style, config):
    return {stage.name: (stage, reason) for stage, reason in build_stages(style, config)}


def test_build_stages_says_what_each_stage_runs_and_why(tmp_path, monkeypatch):
    plan = _plan(make_style(), NeuralConfig())
    assert [(s.name, s.engine) for s, _ in plan.values()] == [
        ("inpaint", "neural"),
        ("latent", "classic"),
        ("repaint", "neural"),
    ]
    assert "no GAN prior" in plan["latent"][1]
    # A style naming a prior that is not installed runs the classic stage 2 and says which prior was missing.
    stage, reason = _plan(make_style(prior="heads-v1"), NeuralConfig())["latent"]
    assert stage.engine == "classic" and "heads-v1.safetensors" in reason and "no prior installed" in reason
    named = Path(os.environ["AVATARTEX_PRIORS"]) / "heads-v1.safetensors"
    named.parent.mkdir(parents=True)
    named.write_bytes(b"x")
    stage, reason = _plan(make_style(prior="heads-v1"), NeuralConfig())["latent"]
    assert stage.engine == "neural" and stage.config.prior == str(named) and "heads-v1" in reason
    with pytest.raises(AvatarTexError) as err:
        build_stages(make_style(), NeuralConfig(prior=str(tmp_path / "none.safetensors")))
    assert err.value.code == ErrorCode.MODEL_MISSING


def test_pipelines_stay_loaded_between_requests(tiny_config):
    from avatartex.engines.neural import pipelines

    pipelines.clear_cache()
    first, native = pipelines.load_inpaint(tiny_config.inpaint_model, tiny_config)
    second, _ = pipelines.load_inpaint(tiny_config.inpaint_model, tiny_config)
    assert first is second and pipelines.cached_count() == 1 and native == 32
    # Weights came from safetensors files through from_pretrained (no pickled .bin anywhere).
    files = {p.suffix for p in Path(tiny_config.inpaint_model).rglob("*") if p.is_file()}
    assert ".safetensors" in files and ".bin" not in files
    assert (
        json.loads((Path(tiny_config.inpaint_model) / "model_index.json").read_text())["_class_name"]
        == "StableDiffusionInpaintPipeline"
    )


def test_available_imports_nothing_heavy_without_a_gpu(monkeypatch):
    """No GPU hint: the answer comes without importing torch (seconds at every backend start)."""
    import subprocess
    import sys

    from avatartex.engines import neural

    if neural.accelerator_hint():
        pytest.skip("this machine has an NVIDIA driver or Apple silicon")
    code = (
        "import sys; from avatartex.engines.neural import available; ok, why = available(); "
        "assert not ok and 'GPU' in why, why; assert 'torch' not in sys.modules"
    )
    backend = str(Path(__file__).resolve().parents[2] / "backend")
    env = {k: v for k, v in os.environ.items() if k != "AVATARTEX_DEVICE"}
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**env, "PYTHONPATH": backend}
    )
    assert run.returncode == 0, run.stderr


def test_explicit_cpu_device_runs_neural_and_names_missing_models(tmp_path, monkeypatch):
    """AVATARTEX_DEVICE=cpu (or --device cpu) is honoured, not refused: with an empty model cache the
    error names the missing models and the command that downloads them."""
    from avatartex.engines import choose, neural

    found = neural.status(NeuralConfig(device="cpu", cache_dir=str(tmp_path)))
    assert not found.ok and found.device == "cpu" and "sd15-inpaint" in found.missing_models
    with pytest.raises(AvatarTexError) as err:
        choose("neural", make_style(), NeuralConfig(device="cpu", cache_dir=str(tmp_path)))
    assert err.value.code == ErrorCode.MODEL_MISSING
    assert "avatartex models download" in err.value.hint and "sd15-inpaint" in err.value.message
    # auto never picks a CPU: it falls back to classic and says why, per stage.
    plan = choose("auto", make_style(), NeuralConfig(device="auto", cache_dir=str(tmp_path)))
    assert plan.engine == "classic" and all(s.engine == "classic" for s in plan.stages)
    assert all(entry["reason"].startswith("auto chose classic") for entry in plan.report().values())


def test_auto_never_runs_the_neural_engine_on_the_cpu(tmp_path, monkeypatch):
    """Where there is no GPU the add-on advises setting the device to CPU; with the models cached,
    ``auto`` then ran every texture on the neural engine on the processor (minutes each), against the
    README ("auto never picks the CPU"). It falls back to classic and says how to run neural there."""
    from avatartex.engines import choose

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    config = NeuralConfig(device="cpu", cache_dir=str(tmp_path))
    for name in (config.inpaint_model, config.repaint_model, config.controlnet_model):
        _fake_snapshot(REGISTRY[name], "a" * 40)
    from avatartex.engines import neural

    assert neural.status(config).ok  # the models are there, the device is the CPU
    plan = choose("auto", make_style(), config)
    assert plan.engine == "classic" and all(s.engine == "classic" for s in plan.stages)
    assert "choose the neural engine" in plan.reasons["inpaint"] and plan.warnings


def test_a_damaged_or_cut_copy_of_a_model_is_not_cached(tmp_path, monkeypatch):
    """A cache whose UNet was cut short, or whose tokenizer folder was lost, was listed as cached; the
    engine then failed at load with a traceback (or "Internal error" in Blender) after the analysis.
    Such a copy counts as missing, so the error is the typed one with the download command."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    entry = REGISTRY["sd15-inpaint"]
    snap = _fake_snapshot(entry, "b" * 40)
    assert hub.find_cached(entry) == snap
    weights = next(snap / f for f in entry.files if f.endswith(".safetensors"))
    table = b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}'
    weights.write_bytes(len(table).to_bytes(8, "little") + table + bytes(16))
    assert hub.find_cached(entry) == snap  # whole
    weights.write_bytes(len(table).to_bytes(8, "little") + table + bytes(9))  # cut short
    assert hub.find_cached(entry) is None
    with pytest.raises(AvatarTexError) as err:
        hub.resolve("sd15-inpaint")
    assert (
        err.value.code == ErrorCode.MODEL_MISSING
        and "avatartex models download sd15-inpaint" in err.value.hint
    )
    weights.write_bytes(len(table).to_bytes(8, "little") + table + bytes(16))
    globbed = [f for f in entry.files if "*" in f]
    for pattern in globbed:  # the tokenizer's files gone
        for path in snap.glob(pattern):
            path.unlink()
    assert not globbed or hub.find_cached(entry) is None


def test_a_model_folder_that_cannot_be_loaded_is_a_typed_error(tiny_config, tmp_path):
    """A local model folder with a weights file damaged (or a part missing) raised diffusers' own
    OSError, a traceback on the command line and "Internal error" in Blender; it is the typed model
    error, naming the model and how to get it whole."""
    import shutil

    from avatartex.engines.neural import pipelines

    broken = tmp_path / "inpaint"
    shutil.copytree(tiny_config.inpaint_model, broken)
    weights = broken / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    pipelines.clear_cache()
    with pytest.raises(AvatarTexError) as err:
        pipelines.load_inpaint(str(broken), tiny_config)
    assert err.value.code == ErrorCode.MODEL_MISSING and str(broken) in err.value.message
    assert "Download it again" in err.value.hint


def test_the_command_lines_quiet_mode_keeps_diffusers_bars_off_the_terminal(monkeypatch):
    """A neural run on the command line drew diffusers' `Loading pipeline components…` bars and
    transformers' warnings into the progress line (they write to Python's stderr, which stays the
    terminal): the quiet mode's environment turns them off, diffusers' bars through the loader."""
    import diffusers.utils.logging
    from avatartex.console import QUIET_ENV
    from avatartex.engines.neural import pipelines

    assert QUIET_ENV["TRANSFORMERS_VERBOSITY"] == "error" and QUIET_ENV["DIFFUSERS_VERBOSITY"] == "error"
    diffusers.utils.logging.enable_progress_bar()
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    pipelines.quiet_libraries()
    assert diffusers.utils.logging.is_progress_bar_enabled()  # -v, the server: as the library has it
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", QUIET_ENV["HF_HUB_DISABLE_PROGRESS_BARS"])
    pipelines.quiet_libraries()
    assert not diffusers.utils.logging.is_progress_bar_enabled()
    diffusers.utils.logging.enable_progress_bar()


def test_a_device_torch_cannot_see_keeps_its_own_hint(tmp_path):
    """`--engine neural --device cuda` on a machine without CUDA: the device check's own advice
    (install a CUDA build of torch and a driver, or choose cpu) was replaced by a generic hint."""
    from avatartex.engines import choose

    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(AvatarTexError) as err:
        choose("neural", make_style(), NeuralConfig(device="cuda", cache_dir=str(tmp_path)))
    assert err.value.code == ErrorCode.ENGINE_UNAVAILABLE
    assert "CUDA build of torch" in err.value.hint and "classic engine" in err.value.hint


def test_a_model_of_the_wrong_kind_is_refused_before_loading(tiny_config, tiny_models):
    """An SD base given as the inpainting model ran silently (the report still said diffusion
    inpainting); an inpainting model given as the repaint's base failed deep in torch. The UNet's
    input channels say which kind a folder is."""
    import dataclasses

    from avatartex.engines.neural import pipelines

    pipelines.clear_cache()
    with pytest.raises(AvatarTexError) as err:
        pipelines.load_inpaint(str(tiny_models.base), tiny_config)
    assert err.value.code == ErrorCode.MODEL_MISSING and "not an inpainting model" in err.value.message
    config = dataclasses.replace(tiny_config, repaint_model=str(tiny_models.inpaint))
    with pytest.raises(AvatarTexError) as err:
        pipelines.load_repaint(config.repaint_model, config.controlnet_model, config)
    assert "not an img2img model" in err.value.message
    pipelines.load_inpaint(tiny_config.inpaint_model, tiny_config)  # the right kinds load
    pipelines.load_repaint(tiny_config.repaint_model, tiny_config.controlnet_model, tiny_config)
