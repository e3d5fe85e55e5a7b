"""What a person meets when the command line or a request is given something odd: a strength or seed
out of range, a huge preview, an output folder that is a file, a folder for a photo, Ctrl-C, a
preview named .jpg, textures left from another run. Each is a typed error (or a warning) before any
heavy work, and none needs the shared assets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from avatartex import cli, preview
from avatartex.image_io import load_portrait, load_texture, save_png
from avatartex.protocol import MAX_SEED, AvatarTexError, ErrorCode, GenerateParams, decode_request
from image_fixtures import png_claiming
from testing_paths import ROOT

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BASE = {"mesh": "m.glb", "portrait": "p.jpg", "out_dir": "o"}


def _generate_argv(tmp_path: Path, *extra: str) -> list[str]:
    """A generate command whose inputs do not exist: what fails first names the real problem."""
    return [
        "generate",
        "--mesh",
        str(tmp_path / "none.glb"),
        "--portrait",
        str(tmp_path / "none.png"),
        "--out",
        str(tmp_path / "out"),
        *extra,
    ]


# --- 1. strength: a finite number from 0 to 1 ---------------------------------------------------------


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "2", "-1", "1.0001"])
def test_a_strength_that_is_not_a_number_from_0_to_1_is_a_bad_request(value):
    # JSON's NaN and Infinity parse (Python's json reads them), so the request is where they stop.
    request = decode_request(
        f'{{"id": 1, "method": "generate", "params": {{"mesh": "m", "portrait": "p", '
        f'"out_dir": "o", "strength": {value}}}}}'
    )
    with pytest.raises(AvatarTexError) as info:
        GenerateParams.from_dict(request.params)
    assert info.value.code == ErrorCode.BAD_REQUEST
    assert "strength" in info.value.message.lower() and "0 to 1" in info.value.message
    assert "0 (the photo" in info.value.hint


def test_strengths_from_0_to_1_are_taken():
    for value in (0, 0.0, 0.5, 1, 1.0):
        assert GenerateParams.from_dict({**BASE, "strength": value}).strength == value


@pytest.mark.parametrize("value", ["nan", "inf", "2", "-1"])
def test_cli_strength_out_of_range_fails_before_any_work(tmp_path, capsys, value):
    assert cli.main(_generate_argv(tmp_path, "--strength", value)) == 1
    err = capsys.readouterr().err
    assert "error [bad_request]" in err and "strength" in err.lower() and "0 to 1" in err
    assert not (tmp_path / "out").exists()


def test_cli_pins_with_a_coordinate_that_is_not_finite_are_refused():
    for value in ("nose_tip=nan,0,0", "chin=0,inf,0"):
        with pytest.raises(AvatarTexError) as info:
            cli.parse_pins([value])
        assert info.value.code == ErrorCode.BAD_REQUEST and value in info.value.message


# --- 2. seed: 0 to 2^63 - 1 -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [2**64, 2**63, -1, -(2**63) - 1])
def test_a_seed_out_of_range_is_a_bad_request_naming_the_range(seed):
    with pytest.raises(AvatarTexError) as info:
        GenerateParams.from_dict({**BASE, "seed": seed})
    assert info.value.code == ErrorCode.BAD_REQUEST
    assert str(seed) in info.value.message and f"0 to {MAX_SEED}" in info.value.message


def test_seeds_in_range_are_taken_and_the_cli_refuses_the_rest(tmp_path, capsys):
    assert MAX_SEED == 2**63 - 1
    for seed in (0, 1, MAX_SEED):
        assert GenerateParams.from_dict({**BASE, "seed": seed}).seed == seed
    started = time.monotonic()
    assert cli.main(_generate_argv(tmp_path, "--seed", "18446744073709551616")) == 1
    assert time.monotonic() - started < 5  # refused up front, not after the portrait's analysis
    err = capsys.readouterr().err
    assert "error [bad_request]" in err and f"0 to {MAX_SEED}" in err


# --- 3. preview size ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["100000", "4097", "0", "-1"])
def test_preview_size_out_of_range_fails_before_reading_the_mesh(tmp_path, capsys, size):
    argv = ["preview", "--mesh", str(tmp_path / "none.glb"), "--texture", str(tmp_path / "t.png")]
    assert cli.main([*argv, "--out", str(tmp_path / "p.png"), "--size", size]) == 1
    err = capsys.readouterr().err
    assert "error [invalid_size]" in err and f"1 to {preview.MAX_SIZE}" in err  # not mesh_missing
    assert cli.PREVIEW_MAX_SIZE == preview.MAX_SIZE == 4096
    with pytest.raises(AvatarTexError) as info:
        preview.render_views(SimpleNamespace(positions=np.zeros((3, 3))), None, ("front",), int(size))
    assert info.value.code == ErrorCode.INVALID_SIZE


# --- 4. demo: output folder checked and arguments validated before anything is written ----------------


def test_demo_into_a_file_is_the_typed_output_error(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    assert cli.main(["demo", "--out", str(afile)]) == 1
    err = capsys.readouterr().err
    assert "error [output_not_writable]" in err and "is a file, not a folder" in err
    assert cli.main(["demo", "--out", str(afile / "sub")]) == 1
    err = capsys.readouterr().err
    assert "error [output_not_writable]" in err and f"lies inside {afile}, which is a file" in err
    assert afile.read_text() == "not a folder"


def test_demo_into_an_unwritable_folder_is_the_typed_output_error(tmp_path, capsys, monkeypatch):
    """The folder cannot be written (permission bits bind no root user, so the probe is refused)."""

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refused)
    out = tmp_path / "locked"
    assert cli.main(["demo", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "error [output_not_writable]" in err and "Permission denied" in err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    ("extra", "code"), [(["--size", "100"], "invalid_size"), (["--style", "bogus"], "unknown_style")]
)
def test_demo_arguments_are_checked_before_its_inputs_are_written(tmp_path, capsys, extra, code):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), *extra]) == 1
    assert f"error [{code}]" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


class _Pipeline:
    """Stands in for the pipeline (a minute here): a grey texture and a doubtful report."""

    def __init__(self, **kwargs):
        pass

    def generate(self, params, progress=None):
        texture = save_png(Path(params.out_dir) / "texture.png", np.full((64, 64, 3), 0.6, np.float32))
        report = {
            "engine": "classic", "style": params.style, "timings": {"total": 1.0}, "coverage": 0.5,
            "registration_error": 0.07, "warnings": ["the photo's mouth is open"],
            "quality": {"verdict": "doubtful", "estimated_error_iod": 0.07, "reasons": ["far off"],
                        "advice": ["add landmark pins"], "notes": []},
        }  # fmt: skip
        (Path(params.out_dir) / "report.json").write_text(json.dumps(report))
        return {"texture": str(texture), "report": report}


def test_the_demo_says_its_verdict_and_the_head_to_open_in_blender(tmp_path, capsys, monkeypatch):
    """The README says every result comes with a verdict, on the command line too, and its demo's
    caption discusses it: the demo printed a JSON excerpt without it, nor named demo_head.glb."""
    from avatartex import pipeline

    monkeypatch.setattr(pipeline, "Generator", _Pipeline)
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--size", "512"]) == 0
    printed = capsys.readouterr().out
    assert (
        "verdict: doubtful" in printed and "why: far off" in printed and "try: add landmark pins" in printed
    )
    assert "warning: the photo's mouth is open" in printed
    assert str(out / "demo_head.glb") in printed and (out / "demo_head.glb").is_file()
    assert (out / "preview.png").is_file()


def test_a_seed_given_to_a_style_that_makes_no_random_choice_is_said(tmp_path, capsys, monkeypatch):
    """Toon, comic and anime on the classic engine are the same for every seed: seed variants made on
    the command line were identical files, unsaid (the add-on says it of its variants)."""
    from avatartex import pipeline

    monkeypatch.setattr(pipeline, "Generator", _Pipeline)
    base = ["generate", "--mesh", str(tmp_path / "m.obj"), "--portrait", str(tmp_path / "p.png")]

    def printed(*extra: str) -> str:
        assert cli.main([*base, "--out", str(tmp_path / "o"), *extra]) == 0
        return capsys.readouterr().out

    assert "note: toon on the classic engine makes no random choice: seed 7" in printed(
        "--style", "toon", "--seed", "7"
    )
    assert "makes no random choice" not in printed("--style", "photoreal", "--seed", "7")
    assert "makes no random choice" not in printed("--style", "toon")
    assert "makes no random choice" not in printed("--style", "toon", "--seed", "7", "--strength", "0.5")


# --- 5. what the errors say ---------------------------------------------------------------------------


def test_a_missing_texture_is_called_a_texture(tmp_path):
    with pytest.raises(AvatarTexError) as info:
        load_texture(tmp_path / "nope.png")
    assert "texture" in info.value.message and "photo" not in info.value.message + info.value.hint
    with pytest.raises(AvatarTexError) as info:
        load_texture(tmp_path)
    assert "is a folder" in info.value.message and "texture" in info.value.message


def test_a_folder_for_a_photo_says_it_is_a_folder(tmp_path):
    with pytest.raises(AvatarTexError) as info:
        load_portrait(tmp_path)
    error = info.value
    assert error.code == ErrorCode.PORTRAIT_MISSING
    assert "is a folder, not an image file" in error.message and "does not exist" not in error.message
    assert "image file" in error.hint


def test_an_output_folder_that_is_a_file_says_so(tmp_path, capsys):
    afile = tmp_path / "out"
    afile.write_text("not a folder")
    assert cli.main(_generate_argv(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "error [output_not_writable]" in err and "is a file, not a folder" in err
    assert "File exists" not in err


def test_a_photo_with_too_many_pixels_is_asked_to_be_downscaled(tmp_path):
    (tmp_path / "big.png").write_bytes(png_claiming(16000, 13000))  # 208 MP: past the 200 MP limit
    with pytest.raises(AvatarTexError) as info:
        load_portrait(tmp_path / "big.png")
    error = info.value
    assert error.code == ErrorCode.PORTRAIT_UNREADABLE and "too large" in error.message
    assert "16000x13000" in error.message and "208 megapixels" in error.message
    assert "Downscale" in error.hint and "4096" in error.hint and "Use a PNG" not in error.hint


def test_an_assembled_message_keeps_one_full_stop(monkeypatch):
    """The neural engine's reason ends in its own full stop, and the message around it adds one."""
    from avatartex import engines
    from avatartex.engines import neural
    from avatartex.styles import get_style

    found = neural.NeuralStatus(False, "CUDA was asked for but torch sees no CUDA device.")
    monkeypatch.setattr(neural, "status", lambda config=None: found)
    with pytest.raises(AvatarTexError) as info:
        engines.choose("neural", get_style("photoreal"), neural.NeuralConfig())
    assert info.value.code == ErrorCode.ENGINE_UNAVAILABLE
    assert info.value.message.endswith("CUDA device.") and ".." not in info.value.message
    assert AvatarTexError("x", "Wait...", "More...").message == "Wait..."  # an ellipsis stays


# --- 6. Ctrl-C ----------------------------------------------------------------------------------------

_SLOW_GENERATE = """
import sys, time
from pathlib import Path
import avatartex.pipeline as pipeline
from avatartex.cli import main

def slow(self, params, progress=None, check_cancel=None):
    Path(sys.argv[1]).write_text("running")
    # Work in short steps, as a request's does: a SIGINT the kernel hands to another thread (the
    # landmarker's) does not cut one long sleep short, and the test waited out all of it under load.
    for _ in range(600):
        time.sleep(0.1)

pipeline.Generator.generate = slow
sys.exit(main(["generate", "--mesh", "m.glb", "--portrait", "p.png", "--out", sys.argv[2]]))
"""


def test_ctrl_c_during_generate_prints_one_line_and_exits_130(tmp_path):
    ready, out = tmp_path / "ready", tmp_path / "out"
    env = {**os.environ, "AVATARTEX_LOG": str(tmp_path / "cli.log"), "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "backend"), env.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOW_GENERATE, str(ready), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ready.exists(), process.communicate(timeout=10)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert err.strip().splitlines() == ["cancelled"] and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


# --- 7. preview file name -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["x.jpg", "x.jpeg", "x", "x.PNG.tif"])
def test_a_preview_not_named_png_is_refused_before_any_work(tmp_path, capsys, name):
    argv = ["preview", "--mesh", str(tmp_path / "none.glb"), "--texture", str(tmp_path / "t.png")]
    assert cli.main([*argv, "--out", str(tmp_path / name)]) == 1
    err = capsys.readouterr().err
    assert "error [bad_request]" in err and ".png" in err
    with pytest.raises(AvatarTexError) as info:
        preview.render_preview(SimpleNamespace(positions=np.zeros((3, 3))), None, tmp_path / name, 8)
    assert info.value.code == ErrorCode.BAD_REQUEST
    assert not (tmp_path / name).exists()
    preview.check_out_path(tmp_path / "x.PNG")  # the case of the extension does not matter


# --- 8. textures left from another run ----------------------------------------------------------------


def _fake_run(out: Path, names: list[str]) -> dict:
    """What Generator.generate returns having written ``names`` into ``out`` (the first the texture)."""
    for name in names:
        (out / name).write_bytes(b"new")
    report = {
        "engine": "classic",
        "style": "photoreal",
        "timings": {"total": 1.0},
        "coverage": 0.9,
        "registration_error": 0.01,
        "warnings": [],
    }
    result = {"texture": str(out / names[0]), "report": report}
    if len(names) > 1:
        result["tiles"] = {name.split(".")[1]: str(out / name) for name in names}
    return result


def test_textures_from_another_run_are_named_not_deleted(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    for old in ("texture.1001.png", "texture.1002.png", "texture.png", "notes.png", "report.json"):
        (out / old).write_bytes(b"old")

    class Generator:
        def __init__(self, **kwargs):
            pass

        def generate(self, params, progress=None):
            return _fake_run(Path(params.out_dir), self.writes)

    import avatartex.pipeline as pipeline

    monkeypatch.setattr(pipeline, "Generator", Generator)
    Generator.writes = ["texture.png"]  # a single tile beside an earlier UDIM run's
    assert cli.main(_generate_argv(tmp_path)) == 0
    printed = capsys.readouterr().out
    warning = next(line for line in printed.splitlines() if "another run" in line)
    assert str(out / "texture.1001.png") in warning and str(out / "texture.1002.png") in warning
    assert "texture.png," not in warning and "notes.png" not in warning
    assert (out / "texture.1001.png").read_bytes() == b"old" and (out / "texture.1002.png").exists()

    Generator.writes = ["texture.1001.png", "texture.1002.png"]  # the reverse: tiles beside a single
    assert cli.main(_generate_argv(tmp_path)) == 0
    warning = next(line for line in capsys.readouterr().out.splitlines() if "another run" in line)
    assert str(out / "texture.png") in warning and "1001" not in warning and " is from" in warning

    (out / "texture.png").unlink()  # the same tiles again: nothing to warn about
    assert cli.main(_generate_argv(tmp_path)) == 0
    assert "another run" not in capsys.readouterr().out


# --- 9. a failed generate leaves no folder behind; a device torch does not know is a usage error ----


def test_a_failed_generate_leaves_no_output_folder_it_created(tmp_path, capsys):
    """The README's promise: a failure leaves the output folder as it was, so none is left behind
    (here: the mesh and photo do not exist; the folder and two of its parents are new)."""
    argv = _generate_argv(tmp_path)
    argv[argv.index("--out") + 1] = str(tmp_path / "new" / "deeper" / "out")
    assert cli.main(argv) == 1
    assert "error [" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_the_writable_check_leaves_the_folder_as_it_was(tmp_path):
    from avatartex.pipeline.report import check_writable

    check_writable(tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    check_writable(tmp_path / "kept")
    assert list(tmp_path.iterdir()) == [tmp_path / "kept"] and list((tmp_path / "kept").iterdir()) == []
    with pytest.raises(AvatarTexError) as info:
        check_writable(tmp_path / "x\x00y")
    assert info.value.code == ErrorCode.OUTPUT_NOT_WRITABLE
    assert repr(str(tmp_path / "x\x00y")) in info.value.message  # the folder named, its NUL visible
    assert list(tmp_path.iterdir()) == [tmp_path / "kept"]


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "gpu", "cuda:"])
def test_an_unknown_device_is_a_usage_error_without_torch(tmp_path, capsys, monkeypatch, device):
    monkeypatch.setitem(sys.modules, "torch", None)  # the check must not need it: `import torch` fails
    assert cli.main(_generate_argv(tmp_path, "--device", device)) == 1
    err = capsys.readouterr().err
    assert f"error [bad_request]: Unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps" in err
    assert "ipu" not in err and "install" not in err
    from avatartex.engines.neural.device import pick_device

    with pytest.raises(AvatarTexError) as info:
        pick_device(device)
    assert info.value.code == ErrorCode.BAD_REQUEST and "cuda:N" in info.value.message


def test_the_device_forms_of_the_help_are_taken():
    from avatartex.engines.neural.device import check_device

    for device in ("", "auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"):
        assert check_device(device) == device
