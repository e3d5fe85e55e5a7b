"""Issue 9 item 6, what was left: each engine's status code said in Blender's words, the neural
engine's models downloaded from Blender (size first, progress, cancel, a failure that changes nothing),
and the scalp, subject and white-balance settings sent with generate."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from blender_support import BACKEND_PYTHON, add_sphere, bpy

MODELS = [
    {"name": "sd15-inpaint", "repo_id": "fake/inpaint", "default": True, "size_gb": 0.002},
    {"name": "sd15", "repo_id": "fake/sd15", "default": True, "size_gb": 0.001},
    {"name": "sdxl-inpaint", "repo_id": "fake/sdxl", "default": False, "size_gb": 0.5},
]


def _hello(code: str, models=(), reason: str = "the backend's own words") -> dict:
    return {
        "protocol": 1,
        "backend_version": "x",
        "devices": ["cpu"],
        "engines": {
            "classic": {"available": True, "code": "ok", "reason": "any CPU"},
            "neural": {"available": code == "ok", "code": code, "reason": reason},
        },
        "models": [{**row, "cached": False} for row in models],
        "styles": [],
    }


class Recorder:
    """A layout stand-in that records what a draw() asks for (panels cannot be drawn headless)."""

    def __init__(self, calls: list):
        self.calls = calls
        self.enabled, self.scale_y = True, 1.0

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return Recorder(self.calls)

        return record


def _draw_preferences(addon) -> list:
    calls: list = []
    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    stand_in = type("Q", (), {"layout": Recorder(calls)})()
    for name in ("backend_mode", "python_path", "model_cache", "device", "low_vram"):
        setattr(stand_in, name, getattr(prefs, name))
    addon.preferences.AVATARTEX_AP_preferences.draw(stand_in, bpy.context)
    return calls


# -- A: engine codes in Blender's words ----------------------------------------------------------------


def test_each_engine_code_becomes_what_to_do_in_blender(addon):
    lines = {
        code: addon.engines.engine_lines(_hello(code, MODELS))[1]
        for code in ("ok", "packages_missing", "models_missing", "no_gpu", "cpu_only", "device_unavailable")
    }
    assert addon.engines.engine_lines(_hello("ok"))[0] == "Classic engine: available"
    assert lines["ok"] == "Neural engine: available"
    assert "tick Neural Engine Packages and press Create Environment" in lines["packages_missing"]
    assert "press Download Models" in lines["models_missing"] and "3 MB once" in lines["models_missing"]
    assert "set Device to CPU" in lines["no_gpu"] and "minutes per texture" in lines["no_gpu"]
    assert "sees no NVIDIA or Apple GPU" in lines["cpu_only"]
    assert "Device chosen" in lines["device_unavailable"] and "set it to Auto" in lines["device_unavailable"]
    for code, line in lines.items():
        assert "avatartex " not in line and "--" not in line and "requirements-neural" not in line, line
        if code != "ok":
            assert line.startswith("Neural engine: not available, ") and "backend's own words" not in line
    # A backend Python without the packages: the classic engine says what to do in Blender.
    lacking = _hello("ok")
    lacking["engines"]["classic"] = {"available": False, "code": "packages_missing", "reason": "pip ..."}
    line = addon.engines.engine_lines(lacking)[0]
    assert line.startswith("Classic engine: not available, the backend Python lacks the packages")
    assert "press Create Environment" in line and "Neural Engine Packages" not in line
    proto = addon.paths.protocol()
    error = addon.errors.for_artist(proto.AvatarTexError("packages_missing", "lacks 'numpy'", "pip install"))
    assert error.hint.startswith("The backend Python lacks the packages") and "pip" not in error.hint
    # A code this add-on does not know (a newer backend): the backend's reason, as it is.
    assert addon.engines.engine_lines(_hello("gpu_too_small"))[1].endswith("the backend's own words")
    # An older backend (a list of the engines that can run, no codes) still reads.
    old = {"engines": ["classic"], "engine_names": ["auto", "classic", "neural"]}
    assert addon.engines.engine_lines(old) == [
        "Classic engine: available",
        "Neural engine: not available, the backend gave no reason",
    ]
    # An existing interpreter: the packages go into it, not into a managed environment.
    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    try:
        prefs.backend_mode = "CUSTOM"
        line = addon.engines.engine_lines(_hello("packages_missing"))[1]
        assert "requirements-neural.txt into the backend Python set in" in line
    finally:
        prefs.backend_mode = "MANAGED"


def test_engine_errors_from_generate_get_the_codes_advice(addon):
    proto = addon.paths.protocol()
    try:
        addon.state.hello = _hello("no_gpu", MODELS)
        error = addon.errors.for_artist(
            proto.AvatarTexError(
                proto.ErrorCode.ENGINE_UNAVAILABLE, "The neural engine cannot run: x.", "--cli"
            )
        )
        assert error.hint.startswith("Set Engine to Classic in the AvatarTex panel, or make the neural")
        assert "set Device to CPU" in error.hint and "--" not in error.hint
        # The backend's reason said the advice again in the command line's words: said once.
        backend_said = "no GPU torch can use; choose the neural engine and device cpu (minutes per texture)"
        error = addon.errors.for_artist(
            proto.AvatarTexError(
                proto.ErrorCode.ENGINE_UNAVAILABLE, f"The neural engine cannot run: {backend_said}.", "x"
            )
        )
        assert str(error).count("minutes per texture") == 1 and "device cpu" not in str(error)
        error = addon.errors.for_artist(
            proto.AvatarTexError(
                proto.ErrorCode.MODEL_MISSING,
                "Model 'sd15-inpaint' (fake/inpaint@main, 0.002 GB) is not in the Hugging Face cache.",
                "Run `avatartex models download sd15-inpaint`.",
            )
        )
        assert "press Download Models" in error.hint and "avatartex " not in error.hint
        # A missing prior is no download: the backend's hint stays.
        error = addon.errors.for_artist(
            proto.AvatarTexError(
                proto.ErrorCode.MODEL_MISSING, "GAN prior 'p' was not found.", "Put it there."
            )
        )
        assert error.hint == "Put it there."
        addon.state.hello = {"engines": ["classic"]}  # an older backend: no codes
        error = addon.errors.for_artist(
            proto.AvatarTexError(proto.ErrorCode.ENGINE_UNAVAILABLE, "The neural engine cannot run.", "--x")
        )
        assert "Test Backend" in error.hint and "--" not in error.hint
    finally:
        addon.state.hello = None


# -- B: models downloaded from Blender ------------------------------------------------------------------


@pytest.fixture
def online():
    """Blender's 'Allow Online Access' on (the bpy module starts with it off)."""
    system = bpy.context.preferences.system
    system.use_online_access = True
    yield
    system.use_online_access = False


@pytest.fixture
def model_cache(addon, tmp_path):
    """An empty model cache set in the preferences (the backend gets it as HF_HUB_CACHE)."""
    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    prefs.model_cache = str(tmp_path / "hub")
    yield tmp_path / "hub"
    prefs.model_cache = ""
    addon.state.model_download = None


def _listing(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file())


def test_download_offline_fails_clearly_and_changes_nothing(addon, real_backend, model_cache, monkeypatch):
    """The real command with HF_HUB_OFFLINE=1 (no machine here can reach Hugging Face)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model_cache.mkdir(parents=True)
    (model_cache / "artist-file.txt").write_text("kept")
    with pytest.raises(RuntimeError, match="online access is off"):
        bpy.ops.avatartex.download_models()
    assert addon.state.model_download is None
    bpy.context.preferences.system.use_online_access = True
    try:
        hello = addon.backend.hello()
        missing = addon.engines.missing_models(hello)
        assert {"sd15-inpaint", "sd15", "controlnet-tile-sd15"} <= {r["name"] for r in missing}
        assert hello["model_cache"] == str(model_cache)
        pid, before = addon.state.client.process.pid, _listing(model_cache)
        engines_before = hello["engines"]
        with pytest.raises(RuntimeError) as failure:
            bpy.ops.avatartex.download_models()
    finally:
        bpy.context.preferences.system.use_online_access = False
    message = str(failure.value)
    assert "Downloading the models failed" in message and "HF_HUB_OFFLINE is set" in message
    assert "Nothing was changed" in message and "press Download Models again" in message
    download = addon.state.model_download
    assert download.done and download.error and download.progress < 1.0
    # Everything as it was: the cache, the running backend, what it says about the engines.
    assert _listing(model_cache) == before
    assert addon.state.client.alive() and addon.state.client.process.pid == pid
    assert addon.state.hello["engines"] == engines_before
    # The preferences say so, and offer the download again.
    calls = _draw_preferences(addon)
    labels = [(c[2]["text"], c[2].get("icon")) for c in calls if c[0] == "label"]
    first = next(i for i, (_text, icon) in enumerate(labels) if icon == "ERROR")
    assert labels[first][0].startswith("Downloading the models failed: Cannot download")
    assert labels[first + 1] == (
        "Nothing was changed: the backend, its environment and the models already downloaded are as they "
        "were.",
        "BLANK1",
    )
    assert any(c[0] == "operator" and c[1][0] == "avatartex.download_models" for c in calls)


def test_download_with_progress_then_engines_refreshed(addon, fake_backend, model_cache, online, capfd):
    fake_backend("ok", models=MODELS)
    assert bpy.ops.avatartex.test_backend() == {"FINISHED"}
    calls = _draw_preferences(addon)
    buttons = [c for c in calls if c[0] == "operator" and c[1][0] == "avatartex.download_models"]
    assert buttons and buttons[0][2]["text"] == "Download Models (3 MB)"  # the size, before anything starts
    assert any("press Download Models" in c[2].get("text", "") for c in calls if c[0] == "label")

    assert bpy.ops.avatartex.download_models() == {"FINISHED"}
    out = capfd.readouterr().out
    assert "downloading sd15-inpaint, sd15 (3 MB) from Hugging Face into" in out  # said before it started
    download = addon.state.model_download
    assert download.error == "" and download.progress == 1.0 and download.names == ["sd15-inpaint", "sd15"]
    assert download.downloaded_bytes == pytest.approx(3e6, rel=0.01)
    progress_steps = [s for s in download.steps if s.startswith("Downloading ")]
    assert any("sd15-inpaint (1 of 2)" in s for s in progress_steps), download.steps
    assert any("sd15 (2 of 2)" in s for s in progress_steps), download.steps
    assert download.steps[-1] == "Models downloaded: sd15-inpaint, sd15"
    assert (model_cache / "models--fake--inpaint" / "blobs" / "sd15-inpaint").stat().st_size == 2_000_000
    # The running backend was asked again: the models are there, the button is gone.
    assert addon.engines.missing_models(addon.state.hello) == []
    calls = _draw_preferences(addon)
    assert not any(c[0] == "operator" and c[1][0] == "avatartex.download_models" for c in calls)
    assert any(c[0] == "label" and c[2].get("text", "").startswith("Models downloaded") for c in calls)
    # Nothing left to fetch: said, nothing started.
    assert bpy.ops.avatartex.download_models() == {"CANCELLED"}


def test_download_cancel_keeps_what_arrived(addon, fake_backend, model_cache, online):
    fake_backend("ok", models=MODELS, download="slow", delay=0.2)
    download = addon.models.plan(addon.backend.hello()).start()
    deadline = time.monotonic() + 30
    while download.downloaded_bytes == 0:
        assert time.monotonic() < deadline and not download.done, download.steps
        time.sleep(0.05)
    calls = _draw_preferences(addon)  # while it runs: a progress bar with the bytes, and Cancel
    assert any(c[0] == "progress" and c[2]["text"].startswith("Downloading sd15-inpaint") for c in calls)
    assert any(c[0] == "operator" and c[1][0] == "avatartex.cancel_download" for c in calls)
    with pytest.raises(RuntimeError, match="already being downloaded"):
        bpy.ops.avatartex.download_models()
    assert bpy.ops.avatartex.cancel_download() == {"FINISHED"}
    download.thread.join(10)
    assert download.done and download.cancelled and download.error == ""
    assert download.message.startswith("Download cancelled. Nothing was changed")
    assert "fetched so far stay in the model cache" in download.message
    assert addon.engines.missing_models(addon.backend.hello())  # still missing, as before
    assert bpy.ops.avatartex.cancel_download() == {"CANCELLED"}  # nothing left to cancel


def test_download_needs_the_neural_packages(addon, fake_backend, model_cache, online):
    fake_backend("ok")  # hello lists no models: huggingface_hub is not in that environment
    with pytest.raises(RuntimeError, match="neural engine's packages are not installed.*Create Environment"):
        bpy.ops.avatartex.download_models()
    assert addon.state.model_download is None


# -- C: the scalp, subject and white-balance settings ----------------------------------------------


@pytest.mark.parametrize(
    ("prop", "default", "sent", "choices", "shown_after", "words"),
    [
        ("scalp", "default", "", ("skin", "hair"), "style", {"skin": "hair cards", "hair": "continued"}),
        # Photo Of: Auto leaves it to the backend (the photo's creases against the head's), This
        # Person keeps the photo's tones (a scan), Someone Else takes the photographed face's relief off.
        ("subject", "auto", "", ("same", "other"), "scalp", {"same": "scan", "other": "relief"}),
        # White Balance: the light's colour read on the photo's eye whites.
        ("white_balance", "auto", "auto", ("eyes", "off"), "subject", {"eyes": "Always", "off": "Keep"}),
    ],
)
def test_scalp_subject_and_white_balance_are_sent_with_generate_and_shown_under_the_style(
    addon, fake_backend, portrait, prop, default, sent, choices, shown_after, words
):
    obj = add_sphere(portrait=portrait)
    settings = bpy.context.scene.avatartex
    settings.resolution = 512
    assert getattr(settings, prop) == default
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert fake_backend.requests()[-1][prop] == sent  # "": the style or the photo decides
    for choice in choices:
        setattr(settings, prop, choice)
        assert bpy.ops.avatartex.generate() == {"FINISHED"}, obj.avatartex.status
        assert fake_backend.requests()[-1][prop] == choice
    # Variants and batches take the scene's setting too.
    obj.avatartex.variants.add().name = "v"
    assert bpy.ops.avatartex.generate_variants() == {"FINISHED"}
    assert fake_backend.requests()[-1][prop] == choices[-1]

    calls: list = []
    addon.panels.AVATARTEX_PT_main.draw(type("P", (), {"layout": Recorder(calls)})(), bpy.context)
    props = [c[1][1] for c in calls if c[0] == "prop"]
    assert props[props.index(shown_after) + 1] == prop
    rna = settings.bl_rna.properties[prop]
    assert [i.identifier for i in rna.enum_items] == [default, *choices]
    for choice, word in words.items():
        assert word in rna.enum_items[choice].description


def test_backend_python_in_the_download_is_the_backends(addon, fake_backend, model_cache, online):
    """The download runs with the backend's interpreter and environment (its cache, PYTHONPATH)."""
    fake_backend("ok", models=MODELS)
    download = addon.models.plan(addon.backend.hello())
    env = download.config.process_env()
    assert download.config.python == os.environ["AVATARTEX_BACKEND_PYTHON"] != BACKEND_PYTHON
    assert env["HF_HUB_CACHE"] == str(model_cache) and download.cache == str(model_cache)
    assert env["PYTHONPATH"].split(os.pathsep)[0] == download.config.backend_root
