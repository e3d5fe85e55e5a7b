"""A tiny stand-in backend speaking the real protocol, for the add-on's failure tests.

Run as ``python fake_backend.py`` (the tests point the add-on's "backend Python" at a wrapper script
that execs this file). Its behaviour is read from the JSON file named by ``AVATARTEX_FAKE_CONTROL`` at
every request, so a test can change it without restarting the process:

``{"mode": "ok" | "slow" | "hang" | "crash" | "crash_once" | "bad_hello", "delay": 0.05}``

* ok: progress events then a texture (the portrait resized: its pixels really come from the photo).
* slow: like ok with ``delay`` seconds between 20 progress steps (for cancel tests).
* hang: never answers generate (until cancelled).
  ``"linger": true`` (slow or hang): a cancelled generate stops only once the fake has answered another
  generate BUSY (or after 30 s), like a real backend finishing its diffusion step after a cancel —
  so a test of the add-on waiting out a busy backend is never moot, however slow the machine.
* crash: exits with code 3 in the middle of generate.
* crash_once: crashes the first generate only (a marker file next to the control file remembers).
* bad_hello: dies before answering hello (a broken environment).

``"noise": N`` (any mode) makes it write, at start, N rounds of the library chatter mediapipe prints
(TensorFlow Lite, glog, protobuf's deprecation warning) mixed with its own log lines to stderr.

It also records every generate request's params in ``<control>.requests.jsonl``, and every
``prepare``'s in ``<control>.prepares.jsonl``; a prepare answers ``ready`` (``"prepare": "no_face"``:
not ready, with that problem), or after ``"prepare_delay"`` seconds (cancellable).

Model downloads: ``"models": [rows like hello's]`` makes ``hello`` list those models (``cached`` once
downloaded, ``model_cache`` from ``HF_HUB_CACHE``) and name the neural engine's code
(``"neural_code"``, default ``models_missing``). Run as ``python fake_backend.py -m
avatartex.cli_models models download NAME...`` (what the add-on runs) it stands for that command:
it writes each model's bytes into the hub cache in chunks and prints the lines the real one prints;
``"download": "slow"`` takes ``delay`` seconds per chunk (cancel tests).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "backend"))

import numpy as np  # noqa: E402
from avatartex import protocol, uvtiles  # noqa: E402
from avatartex.protocol import AvatarTexError, ErrorCode  # noqa: E402
from PIL import Image  # noqa: E402

_write_lock = threading.Lock()
_cancel: dict[object, threading.Event] = {}
_answered_busy = threading.Event()
"""Set once a generate has been answered BUSY (what a lingering cancelled generate waits for)."""


def control() -> dict:
    """The current behaviour (see the module docstring)."""
    path = os.environ.get("AVATARTEX_FAKE_CONTROL", "")
    if path and Path(path).is_file():
        return json.loads(Path(path).read_text())
    return {"mode": "ok"}


_preparing: dict[object, bool] = {}
"""Request ids of the prepares running (a generate waits for them, as the real server's does)."""


def prepare(req_id, params: dict) -> None:
    """A fake ``prepare``: recorded, answered ``ready`` (or the control's problem) after its delay."""
    path = os.environ.get("AVATARTEX_FAKE_CONTROL", "")
    if path:
        with open(path + ".prepares.jsonl", "a") as fh:
            mesh = np.load(params["mesh"])
            fh.write(json.dumps({**params, "triangles": int(len(mesh["triangles"]))}) + "\n")
    event = _cancel[req_id]
    cancelled = event.wait(float(control().get("prepare_delay", 0.0)))
    _cancel.pop(req_id, None)
    _preparing.pop(req_id, None)
    if cancelled:
        send(protocol.error_message(req_id, AvatarTexError(ErrorCode.CANCELLED, "Cancelled.", "")))
    elif control().get("prepare") == "no_face":
        problem = AvatarTexError(ErrorCode.NO_FACE_ON_MESH, "No face on the mesh.", "Set pins.")
        send(protocol.result_message(req_id, {"ready": False, "problem": problem.to_dict()}))
    else:
        send(protocol.result_message(req_id, {"ready": True, "landmarks": "detected"}))


def send(message: dict) -> None:
    """Write one protocol line."""
    with _write_lock:
        sys.stdout.write(protocol.encode(message) + "\n")
        sys.stdout.flush()


class _Lingering:
    """A cancel event that reads as set only once another generate has been answered BUSY."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def is_set(self) -> bool:
        return self.event.is_set() and _answered_busy.wait(timeout=30.0)


def generate(req_id, params: dict) -> None:
    """Fake generate: checks its inputs like the real one, then writes the portrait as the texture."""
    cancel = _cancel[req_id]
    try:
        ctl = control()
        if ctl.get("linger"):
            cancel = _Lingering(cancel)
        path = os.environ.get("AVATARTEX_FAKE_CONTROL", "")
        if path:
            with open(path + ".requests.jsonl", "a") as fh:
                fh.write(json.dumps(params) + "\n")
        p = protocol.GenerateParams.from_dict(params)
        mode = ctl.get("mode", "ok")
        if mode == "crash_once" and path:
            marker = Path(path + ".crashed")
            if not marker.exists():
                marker.write_text("1")
                mode = "crash"
            else:
                mode = "ok"
        if not Path(p.mesh).is_file():
            raise AvatarTexError(ErrorCode.MESH_MISSING, f"No mesh at {p.mesh}.", "")
        with np.load(p.mesh) as capture:
            missing = {"positions", "triangles", "uvs"} - set(capture.files)
            if missing:
                raise AvatarTexError(ErrorCode.MESH_INVALID, f"Capture lacks {sorted(missing)}.", "")
            if capture["uvs"].shape != (len(capture["triangles"]), 3, 2):
                raise AvatarTexError(ErrorCode.MESH_INVALID, "uvs must be (T, 3, 2).", "")
            squares = uvtiles.tiles(capture["uvs"])
            # The real backend textures the face's material; the fake, the one with most triangles.
            materials = capture["materials"] if "materials" in capture.files else None
        if not Path(p.portrait).is_file():
            raise AvatarTexError(ErrorCode.PORTRAIT_MISSING, f"No portrait at {p.portrait}.", "")
        try:
            photo = Image.open(p.portrait).convert("RGB")
        except Exception:  # noqa: BLE001
            raise AvatarTexError(
                ErrorCode.PORTRAIT_UNREADABLE, f"{p.portrait} is not an image.", "Use a PNG or JPEG photo."
            ) from None
        if np.asarray(photo).std() < 2.0:
            raise AvatarTexError(
                ErrorCode.NO_FACE_IN_PORTRAIT,
                "No face found in the portrait.",
                "Use a photo where the face is visible and frontal.",
            )
        steps = 20 if mode in ("slow", "hang") else 4
        for step in range(steps):
            if cancel.is_set():
                raise protocol.Cancelled()
            send(
                protocol.progress_message(
                    req_id, protocol.Progress("project", step / steps, f"step {step + 1}/{steps}")
                )
            )
            if mode == "crash" and step == 1:
                sys.stderr.write("fake backend: simulated crash\n")
                sys.stderr.flush()
                os._exit(3)
            time.sleep(float(ctl.get("delay", 0.01)) if mode != "hang" else 0.2)
        while mode == "hang" and not cancel.is_set():
            time.sleep(0.05)
        if cancel.is_set():
            raise protocol.Cancelled()
        out = Path(p.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        texture = out / p.texture_name
        result: dict = {}
        if uvtiles.UDIM_TOKEN in p.base_texture:  # a tiled base: the head's tile 1001, the rest kept
            base = uvtiles.tile_files(p.base_texture)
            texture = out / uvtiles.tile_file(p.texture_name, (0, 0))
            photo.resize((p.size, p.size)).save(texture)
            result["tiles"] = {"1001": str(texture)}
            result["base_tiles"] = {str(uvtiles.udim(t)): str(f) for t, f in base.items() if t != (0, 0)}
        elif len(squares) > 1:  # the real backend's UDIM files; each tile the photo at another brightness
            files = {uvtiles.udim(t): out / uvtiles.tile_file(p.texture_name, t) for t in squares}
            for k, file in enumerate(files.values()):
                photo.resize((p.size, p.size)).point(lambda v, k=k: v * (k + 1) // len(files)).save(file)
            result["tiles"] = {str(number): str(file) for number, file in files.items()}
            texture = files[min(files)]
        else:
            photo.resize((p.size, p.size)).save(texture)
        report: dict = {"engine": "fake"}
        if p.body_mesh:  # a body of its own: its image, darkened, as the real backend's toned copy
            body_out = out / f"{Path(p.texture_name).stem}_body.png"
            Image.open(p.body_texture).convert("RGB").point(lambda v: v // 2).save(body_out)
            result["body_texture"] = str(body_out)
            report["body"] = {"kind": "separate", "tone_match": p.tone_match, "written": str(body_out)}
        if materials is not None:
            report["material"] = {"index": int(np.bincount(materials).argmax())}
            # A body in a material of its own: the real backend's choice is the set meeting the face
            # below the mouth; the fake's, the first other set whose image is named as a body's
            # (torso, body; not an eye's). Its copy darkened.
            others = [
                i
                for i, f in enumerate(p.material_textures)
                if i != report["material"]["index"]
                and any(w in Path(f).name.lower() for w in ("torso", "body"))
            ]
            if others and not p.body_mesh:
                body_out = out / f"{Path(p.texture_name).stem}_body.png"
                Image.open(p.material_textures[others[0]]).convert("RGB").point(lambda v: v // 2).save(
                    body_out
                )
                result["body_texture"] = str(body_out)
                report["body"] = {
                    "kind": "material",
                    "material_index": others[0],
                    "tone_match": p.tone_match,
                    "written": str(body_out),
                    "summary": "the body's material: its skin matched to the face's",
                }
        if ctl.get("warnings"):
            report["warnings"] = list(ctl["warnings"])
        if ctl.get("body"):
            report["body"] = dict(ctl["body"])
        if ctl.get("verdict"):
            report["quality"] = {
                "verdict": ctl["verdict"],
                "estimated_error_iod": 0.2,
                # As long as the real backend's: the panel must lay them out on lines it holds.
                "reasons": [
                    "the photo may sit off the mesh by about 20% of the eye distance: features may "
                    "land beside their place (eyes on brows, lips doubled)",
                    "the photo's and the mesh's landmarks disagree",
                ],
                "advice": [
                    "add landmark pins on the mesh (eye corners, nose tip, mouth corners)",
                    "look at the eyes and mouth in the viewport",
                ],
            }
        send(protocol.result_message(req_id, {"texture": str(texture), "report": report, **result}))
    except AvatarTexError as exc:
        send(protocol.error_message(req_id, exc))
    finally:
        _cancel.pop(req_id, None)


def _model_dir(repo_id: str) -> Path:
    return Path(os.environ.get("HF_HUB_CACHE", "fake-hub")) / ("models--" + repo_id.replace("/", "--"))


def _engines_and_models() -> dict:
    """hello's engines (a list, as older backends send, unless models are listed) and models."""
    models = fake_models()
    if not models:
        return {"engines": ["classic"], "models": []}
    code = control().get("neural_code", "models_missing")
    return {
        "engines": {
            "classic": {"available": True, "code": "ok", "reason": "fake"},
            "neural": {"available": False, "code": code, "reason": "fake: see the code"},
        },
        "models": models,
        "model_cache": os.environ.get("HF_HUB_CACHE", ""),
    }


def fake_models() -> list[dict]:
    """The control's ``models`` rows, each ``cached`` once the fake download completed it."""
    return [
        {**row, "cached": (_model_dir(row["repo_id"]) / "snapshots" / "fake" / "complete").is_file()}
        for row in control().get("models", [])
    ]


def download(names: list[str]) -> int:
    """Fake ``avatartex models download NAME...``: each model's ``size_gb`` written in 20 chunks."""
    ctl = control()
    rows = {row["name"]: row for row in ctl.get("models", [])}
    delay = float(ctl.get("delay", 0.2)) if ctl.get("download") == "slow" else 0.0
    for name in names:
        row = rows[name]
        folder = _model_dir(row["repo_id"])
        print(
            f"downloading {name}: {row['repo_id']}@main (~{row['size_gb']:g} GB) into {folder.parent}",
            file=sys.stderr,
        )
        blob = folder / "blobs" / f"{name}.incomplete"
        blob.parent.mkdir(parents=True, exist_ok=True)
        chunk = b"x" * int(row["size_gb"] * 1e9 / 20)
        with blob.open("ab") as fh:
            for _ in range(20):
                fh.write(chunk)
                fh.flush()
                time.sleep(delay)
        blob.rename(blob.with_suffix(""))
        done = folder / "snapshots" / "fake" / "complete"
        done.parent.mkdir(parents=True, exist_ok=True)
        done.write_text("1")
        print(f"{name}: ready at {done.parent}", file=sys.stderr)
    return 0


def main() -> None:
    """Read requests until stdin closes or ``shutdown``."""
    if sys.argv[1:5] == ["-m", "avatartex.cli_models", "models", "download"]:
        sys.exit(download(sys.argv[5:]))
    for i in range(int(control().get("noise", 0))):
        sys.stderr.write(
            "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
            "W0000 00:00:1795340348.511504    5994 inference_feedback_manager.cc:114] Feedback "
            "manager requires a model with a single signature inference.\n"
            "/x/google/protobuf/symbol_database.py:55: UserWarning: SymbolDatabase.GetPrototype() "
            "is deprecated. Please use message_factory.GetMessageClass() instead.\n"
            "  warnings.warn('SymbolDatabase.GetPrototype() is deprecated. Please '\n"
            f"2026-01-01 00:00:00,000 INFO avatartex.server: fake backend line {i}\n"
        )
    sys.stderr.flush()
    if control().get("mode") == "bad_hello":
        sys.stderr.write("ModuleNotFoundError: No module named 'torch' (fake broken environment)\n")
        sys.exit(1)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = protocol.decode_request(line)
        except AvatarTexError as exc:
            send(protocol.error_message(None, exc))
            continue
        if req.method == "hello":
            send(
                protocol.result_message(
                    req.id,
                    {
                        "protocol": protocol.PROTOCOL_VERSION,
                        "backend_version": "fake",
                        "devices": ["cpu"],
                        "methods": list(protocol.METHODS),
                        **_engines_and_models(),
                        "env": {k: v for k, v in os.environ.items() if k.startswith("AVATARTEX_")},
                        "styles": [
                            {"name": "photoreal", "label": "Photoreal", "seed_free": False},
                            {"name": "toon", "label": "Toon", "seed_free": True},
                        ],
                    },
                )
            )
        elif req.method == "generate":
            if any(not _preparing.get(k) for k in _cancel):  # like the real server: one at a time
                if os.environ.get("AVATARTEX_FAKE_CONTROL"):
                    with open(os.environ["AVATARTEX_FAKE_CONTROL"] + ".busy", "a") as fh:
                        fh.write(f"{req.id}\n")
                send(protocol.error_message(req.id, AvatarTexError(ErrorCode.BUSY, "Still running.", "")))
                _answered_busy.set()
                continue
            _cancel[req.id] = threading.Event()
            threading.Thread(target=generate, args=(req.id, req.params), daemon=True).start()
        elif req.method == "prepare":
            _cancel[req.id] = threading.Event()
            _preparing[req.id] = True
            threading.Thread(target=prepare, args=(req.id, req.params), daemon=True).start()
        elif req.method == "cancel":
            event = _cancel.get(req.params.get("request"))
            if event is not None:
                event.set()
            send(protocol.result_message(req.id, {}))
        elif req.method == "shutdown":
            send(protocol.result_message(req.id, {}))
            return
        else:
            send(protocol.error_message(req.id, AvatarTexError(ErrorCode.UNKNOWN_METHOD, req.method, "")))


if __name__ == "__main__":
    main()
