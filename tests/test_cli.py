"""The ``avatartex`` command as a new user meets it: axis options, --unwrap's mesh, preview's facing,
and a terminal free of library noise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from avatartex import cli
from avatartex.image_io import load_texture, save_png
from avatartex.mesh import Mesh, load_mesh, save_mesh, unwrap, validate
from avatartex.protocol import AvatarTexError, ErrorCode
from testing_paths import ROOT

GLTF_TO_BLENDER = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
"""(x, y, z) -> (x, -z, y): a +y-up, +z-facing head becomes +z-up, -y-facing (Blender's axes)."""


def test_axis_values_starting_with_a_minus_parse():
    parser = cli.build_parser()
    for argv in (["--facing", "-y"], ["--facing=-y"], ["--facing", "-Y"]):
        args = parser.parse_args(
            cli._join_axis_values(["generate", "--mesh", "m", "--portrait", "p", "--out", "o", *argv])
        )
        assert args.facing.lower() == "-y"
    args = parser.parse_args(
        cli._join_axis_values(["preview", "--mesh", "m", "--texture", "t", "--out", "o", "--up", "-z"])
    )
    assert args.up == "-z" and args.facing == ""
    # Only axis values are joined: a missing value still fails at parsing, naming the option.
    with pytest.raises(SystemExit):
        parser.parse_args(cli._join_axis_values(["generate", "--mesh", "m", "--facing", "--out", "o"]))


def test_main_accepts_facing_minus_y(tmp_path, capsys):
    code = cli.main(
        [
            "generate",
            "--mesh",
            str(tmp_path / "missing.glb"),
            "--portrait",
            str(tmp_path / "missing.png"),
            "--out",
            str(tmp_path / "out"),
            "--engine",
            "classic",
            "--facing",
            "-y",
        ]
    )
    # Past the parser (which exits with 2 and "expected one argument"): a typed input error, 1.
    assert code == 1
    err = capsys.readouterr().err
    assert "expected one argument" not in err and "error [" in err


def _tiny_textured_mesh(tmp_path: Path) -> tuple[Path, Path]:
    sphere = trimesh.creation.icosphere(subdivisions=2)
    mesh = unwrap(validate(Mesh(sphere.vertices, sphere.faces, None), require_uvs=False))
    mesh_path = save_mesh(mesh, tmp_path / "mesh.glb")
    texture = tmp_path / "texture.png"
    save_png(texture, np.full((64, 64, 3), 0.7, np.float32))
    return mesh_path, texture


def test_preview_with_given_axes_needs_no_face(tmp_path, capsys):
    mesh_path, texture = _tiny_textured_mesh(tmp_path)
    out = tmp_path / "preview.png"
    argv = ["preview", "--mesh", str(mesh_path), "--texture", str(texture), "--out", str(out), "--size", "32"]
    assert cli.main([*argv, "--facing", "-y", "--up", "+z"]) == 0
    assert load_texture(out).shape == (32, 96, 3)


def test_preview_of_a_mesh_without_uvs_hints_at_the_unwrapped_mesh(tmp_path, capsys):
    sphere = trimesh.creation.icosphere(subdivisions=2)
    plain = tmp_path / "plain.ply"
    sphere.export(plain)
    texture = tmp_path / "texture.png"
    save_png(texture, np.full((64, 64, 3), 0.7, np.float32))
    out = tmp_path / "preview.png"
    argv = ["preview", "--mesh", str(plain), "--texture", str(texture), "--out", str(out), "--size", "32"]
    assert cli.main([*argv, "--up", "+y", "--facing", "+z"]) == 1
    err = capsys.readouterr().err
    assert "no_uv_map" in err and "mesh.glb" in err and "--unwrap to make one" not in err
    # With the mesh generate --unwrap writes beside the texture, preview takes that one.
    mesh = unwrap(validate(Mesh(sphere.vertices, sphere.faces, None), require_uvs=False))
    save_mesh(mesh, tmp_path / "mesh.glb")
    assert cli.main([*argv, "--up", "+y", "--facing", "+z"]) == 0
    assert "mesh.glb" in capsys.readouterr().out and out.exists()


def test_preview_axes_come_from_the_mesh_hints_or_the_found_face():
    sphere = trimesh.creation.icosphere(subdivisions=1)
    mesh = Mesh(sphere.vertices.astype(np.float32), sphere.faces.astype(np.int32), None)
    mesh.up, mesh.forward = np.array([0, 0, 1.0]), np.array([0, -1.0, 0])
    up, forward = cli.preview_axes(mesh)
    np.testing.assert_allclose(up, [0, 0, 1]) and np.testing.assert_allclose(forward, [0, -1, 0])
    up, forward = cli.preview_axes(mesh, facing="+x")
    np.testing.assert_allclose(forward, [1, 0, 0])


@pytest.fixture(scope="module")
def blender_axes_head(tmp_path_factory) -> Path:
    """The demo head without a UV map, as Blender's PLY exporter writes it: +z up, facing -y."""
    from avatartex import demo_head

    positions, triangles = demo_head._surface(96)
    path = tmp_path_factory.mktemp("zup") / "head_zup.ply"
    trimesh.Trimesh(positions @ GLTF_TO_BLENDER.T, triangles, process=False).export(path)
    return path


@pytest.fixture(scope="module")
def generated(blender_axes_head, astronaut_path, tmp_path_factory):
    """``python -m avatartex generate --unwrap --facing -y`` on it, in a child process as a user runs it."""
    out = tmp_path_factory.mktemp("gen") / "out"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "backend"), os.environ.get("PYTHONPATH", "")]),
        "AVATARTEX_LOG": str(out.parent / "cli.log"),
    }
    for key in ("GLOG_minloglevel", "TF_CPP_MIN_LOG_LEVEL"):
        env.pop(key, None)  # the command must quieten the libraries itself
    done = subprocess.run(
        [sys.executable, "-m", "avatartex", "generate", "--mesh", str(blender_axes_head)]
        + ["--portrait", str(astronaut_path), "--out", str(out), "--size", "512", "--engine", "classic"]
        + ["--unwrap", "--facing", "-y"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    return done, out


def test_generate_unwrap_writes_the_mesh_and_a_quiet_terminal(generated):
    done, out = generated
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["unwrapped_mesh"] == str(out / "mesh.glb")
    assert "mesh.glb" in done.stdout and not list(out.glob("*.part"))
    # The verdict is printed with what it rests on, as report.json has it.
    assert f"verdict: {report['quality']['verdict']}" in done.stdout
    # The texture fits the saved mesh's UVs: same surface, a UV map on every triangle.
    mesh = load_mesh(out / "mesh.glb")
    assert mesh.uvs is not None and len(mesh.triangles) > 30_000
    noise = [
        line
        for line in done.stderr.splitlines()
        if any(word in line for word in ("WARNING", "absl", "TensorFlow", "W0000", "I0000", "UserWarning"))
    ]
    assert not noise, done.stderr
    # ... and the noise went to the log file instead.
    assert (out.parent / "cli.log").exists()


def test_preview_finds_the_facing_of_a_z_up_mesh(generated, tmp_path, monkeypatch):
    done, out = generated
    assert done.returncode == 0, done.stderr
    found = []
    axes = cli.preview_axes
    monkeypatch.setattr(cli, "preview_axes", lambda *a, **k: found.append(axes(*a, **k)) or found[-1])
    code = cli.main(
        ["preview", "--mesh", str(out / "mesh.glb"), "--texture", str(out / "texture.png")]
        + ["--out", str(tmp_path / "p.png"), "--size", "64"]
    )
    assert code == 0 and load_texture(tmp_path / "p.png").shape == (64, 192, 3)
    # Found from the face, as generate does: +z up and -y forward, not glTF's +y / +z.
    up, forward = found[0]
    assert up @ np.array([0, 0, 1.0]) > 0.9 and forward @ np.array([0, -1.0, 0]) > 0.9, (up, forward)


def test_library_output_goes_to_the_log_file(tmp_path, monkeypatch):
    from avatartex.console import library_output

    monkeypatch.setenv("AVATARTEX_LOG", str(tmp_path / "x.log"))
    with library_output(verbose=False) as path:
        os.write(2, b"W0000 native library noise\n")
        import logging
        import warnings

        logging.getLogger("somelib").warning("python library noise")
        warnings.warn("deprecated thing", UserWarning, stacklevel=1)
    text = Path(path).read_text()
    assert "native library noise" in text and "python library noise" in text and "deprecated thing" in text


def test_the_log_file_starts_afresh_once_large_keeping_one_old_one(tmp_path, monkeypatch):
    """The log was only ever appended to (3.9 MB in a QA's cache, mostly libraries' noise)."""
    from avatartex import console

    log = tmp_path / "cli.log"
    monkeypatch.setenv("AVATARTEX_LOG", str(log))
    log.write_bytes(b"old line\n" * (console.LOG_MAX_BYTES // 9 + 1))
    with console.library_output(verbose=False):
        os.write(2, b"new noise\n")
    assert log.read_text() == "new noise\n"
    assert (tmp_path / "cli.log.1").read_bytes().startswith(b"old line")
    with console.library_output(verbose=False):  # small: appended to
        os.write(2, b"more\n")
    assert log.read_text() == "new noise\nmore\n"


def test_unwrap_error_is_typed():
    with pytest.raises(AvatarTexError) as err:
        from avatartex.mesh import check_unwrap

        check_unwrap(np.zeros((10, 3, 2), np.float32), "flat")
    assert err.value.code == ErrorCode.MESH_INVALID and "100%" in err.value.message


def test_full_body_options_reach_the_request(tmp_path, capsys):
    """--base-texture and --tone-match go into the request: a base texture that is not there is a
    typed error before any work, and the output folder stays empty."""
    parser = cli.build_parser()
    args = parser.parse_args(
        ["generate", "--mesh", "m", "--portrait", "p", "--out", "o", "--base-texture", "b.png"]
        + ["--tone-match", "face_to_body"]
    )
    assert (args.base_texture, args.tone_match) == ("b.png", "face_to_body")
    out = tmp_path / "out"
    status = cli.main(
        ["generate", "--mesh", str(tmp_path / "none.glb"), "--portrait", str(tmp_path / "none.png")]
        + ["--out", str(out), "--base-texture", str(tmp_path / "missing.png")]
    )
    assert status == 1 and "error [base_texture_unreadable]" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(("option", "choices"), [("scalp", ("hair", "skin")), ("subject", ("same", "other"))])
def test_scalp_and_subject_options_reach_the_request(monkeypatch, tmp_path, capsys, option, choices):
    """--scalp skin|hair and --subject same|other go into the request; without them the style (the
    scalp) or the photo (the subject) decides; anything else is refused by the parser."""
    seen = []

    class Recorder:
        def __init__(self, **kwargs):
            pass

        def generate(self, params, progress=None):
            seen.append(getattr(params, option))
            raise AvatarTexError(ErrorCode.PORTRAIT_MISSING, "stop here", "")

    import avatartex.pipeline as pipeline

    monkeypatch.setattr(pipeline, "Generator", Recorder)
    base = ["generate", "--mesh", "m.glb", "--portrait", "p.png", "--out", str(tmp_path / "o")]
    for extra in [[f"--{option}", choice] for choice in choices] + [[]]:
        assert cli.main(base + extra) == 1
    assert seen == [*choices, ""]
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(base + [f"--{option}", "wig"])
    assert "invalid choice" in capsys.readouterr().err


def test_verbose_is_read_before_or_after_the_command():
    """The README's synopsis puts ``-v`` after ``generate ...``: it was "unrecognized arguments"."""
    parser = cli.build_parser()
    base = ["generate", "--mesh", "m.obj", "--portrait", "p.png", "--out", "o"]
    assert parser.parse_args(base + ["-v"]).verbose and parser.parse_args(["-v", *base]).verbose
    assert not parser.parse_args(base).verbose
    assert parser.parse_args(["models", "list", "--verbose"]).verbose


def test_a_typed_error_exits_1_a_bad_command_line_2_and_json_errors_are_one_line(tmp_path, capsys):
    """A farm's script tells its own mistake (exit 2, argparse's) from an asset that failed (exit 1,
    the typed error), and with ``--errors json`` reads the code from one JSON line on stderr."""
    argv = ["generate", "--mesh", str(tmp_path / "none.glb"), "--portrait", str(tmp_path / "none.png")]
    argv += ["--out", str(tmp_path / "out")]
    assert cli.main(argv) == 1
    text = capsys.readouterr().err
    assert text.startswith("error [") and "hint:" in text
    assert cli.main(["--errors", "json", *argv]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    error = json.loads(lines[0])["error"]
    assert error["code"] in ("mesh_missing", "portrait_missing") and error["message"] and error["hint"]
    with pytest.raises(SystemExit) as exited:
        cli.main(["generate", "--mesh"])
    assert exited.value.code == 2
