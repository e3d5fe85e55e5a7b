"""The stdio server: hello, bad lines, unknown methods, busy, cancel, shutdown; and a real subprocess."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from avatartex.engines import neural
from avatartex.engines.neural import NeuralConfig
from avatartex.protocol import AvatarTexError, Cancelled, ErrorCode, Progress
from avatartex.server import Server, engine_status
from avatartex.styles import get_style
from testing_paths import ROOT


class SlowGenerator:
    """Stands in for the pipeline: emits progress every 10 ms and honours cancel."""

    def __init__(self, steps: int = 200) -> None:
        self.steps = steps

    def engines(self):
        return {"classic": {"available": True, "reason": ""}}

    def generate(self, params, progress, check_cancel):
        for i in range(self.steps):
            check_cancel()
            progress(Progress("inpaint", i / self.steps, f"step {i}"))
            time.sleep(0.01)
        return {"texture": "t.png", "report": {}}


class PreparingGenerator(SlowGenerator):
    """Also stands in for ``prepare``: a landmark search of ``views`` detector views (10 ms each,
    cancellable), or the typed error of a mesh without a face; records what ran, in order."""

    def __init__(self, views: int = 30) -> None:
        super().__init__(steps=5)
        self.views = views
        self.log: list[str] = []

    def prepare(self, params, check_cancel):
        if params.mesh == "faceless":
            raise AvatarTexError(ErrorCode.NO_FACE_ON_MESH, "No face on the mesh.", "Set pins.")
        self.log.append(f"prepare {params.mesh} started")
        for _ in range(self.views):
            check_cancel()
            time.sleep(0.01)
        self.log.append(f"prepare {params.mesh} done")
        return {"ready": True, "mesh": params.mesh}

    def generate(self, params, progress, check_cancel):
        self.log.append(f"generate {params.mesh}")
        return super().generate(params, progress, check_cancel)


class Pipe:
    """A line source the test feeds while the server runs."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._closed = False

    def send(self, obj) -> None:
        with self._cond:
            self._lines.append(obj if isinstance(obj, str) else json.dumps(obj))
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def __iter__(self):
        while True:
            with self._cond:
                while not self._lines and not self._closed:
                    self._cond.wait()
                if not self._lines:
                    return
                line = self._lines.pop(0)
            yield line + "\n"


def run_server(generator):
    pipe, out = Pipe(), io.StringIO()
    server = Server(pipe, out, generator)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    return pipe, out, thread


def messages(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def wait_for(out, predicate, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [m for m in messages(out) if predicate(m)]
        if found:
            return found[0]
        time.sleep(0.01)
    raise AssertionError(f"no matching message in {messages(out)[-5:]}")


def test_bad_lines_get_errors_and_the_server_keeps_serving():
    pipe, out, thread = run_server(SlowGenerator())
    pipe.send("this is not json")
    pipe.send({"id": 1, "method": "frobnicate"})
    pipe.send({"id": 2, "method": "generate", "params": {"mesh": "m"}})
    pipe.send({"id": 3, "method": "cancel"})
    pipe.send({"id": 9, "method": "shutdown"})
    thread.join(10)
    msgs = messages(out)
    assert msgs[0]["id"] is None and msgs[0]["error"]["code"] == ErrorCode.PARSE_ERROR
    assert (
        msgs[1] == {"id": 1, "error": msgs[1]["error"]}
        and msgs[1]["error"]["code"] == ErrorCode.UNKNOWN_METHOD
    )
    assert msgs[2]["error"]["code"] == ErrorCode.BAD_REQUEST
    assert msgs[3] == {"id": 3, "result": {"cancelled": False}}
    assert msgs[4] == {"id": 9, "result": {"ok": True}}


def test_progress_then_one_result_and_busy_while_running():
    pipe, out, thread = run_server(SlowGenerator(steps=30))
    params = {"mesh": "m", "portrait": "p", "out_dir": "o"}
    pipe.send({"id": 1, "method": "generate", "params": params})
    wait_for(out, lambda m: m.get("event") == "progress")
    pipe.send({"id": 2, "method": "generate", "params": params})
    busy = wait_for(out, lambda m: m.get("id") == 2)
    assert busy["error"]["code"] == ErrorCode.BUSY
    final = wait_for(out, lambda m: m.get("id") == 1 and "event" not in m)
    assert final["result"]["texture"] == "t.png"
    ones = [m for m in messages(out) if m.get("id") == 1]
    assert ones[-1] is not None and all("event" in m for m in ones[:-1]) and len(ones) == 31
    pipe.close()
    thread.join(10)


def test_cancel_stops_a_running_generate_at_its_next_step():
    pipe, out, thread = run_server(SlowGenerator(steps=10_000))
    pipe.send({"id": 5, "method": "generate", "params": {"mesh": "m", "portrait": "p", "out_dir": "o"}})
    wait_for(out, lambda m: m.get("event") == "progress")
    pipe.send({"id": 6, "method": "cancel", "params": {"request": 5}})
    answered = wait_for(out, lambda m: m.get("id") == 6)
    steps_at_cancel = sum(1 for m in messages(out) if m.get("event") == "progress")
    final = wait_for(out, lambda m: m.get("id") == 5 and "error" in m)
    assert final["error"]["code"] == Cancelled().code
    # The worker checks the flag at every step: at most one more step once the cancel was answered.
    steps_total = sum(1 for m in messages(out) if m.get("event") == "progress")
    assert steps_total - steps_at_cancel <= 1 and steps_total < 10_000
    assert answered["result"] == {"cancelled": True}
    pipe.close()
    thread.join(10)


GENERATE = {"mesh": "head", "portrait": "p", "out_dir": "o"}


def test_a_generate_waits_for_the_prepare_of_its_head_and_finds_it_done():
    generator = PreparingGenerator()
    pipe, out, thread = run_server(generator)
    pipe.send({"id": 1, "method": "prepare", "params": {"mesh": "head"}})
    pipe.send({"id": 2, "method": "generate", "params": GENERATE})
    assert wait_for(out, lambda m: m.get("id") == 1 and "event" not in m)["result"]["ready"] is True
    assert wait_for(out, lambda m: m.get("id") == 2 and "event" not in m)["result"]["texture"] == "t.png"
    assert generator.log == ["prepare head started", "prepare head done", "generate head"]
    pipe.close()
    thread.join(10)


def test_a_new_prepare_cancels_the_previous_one_and_a_prepare_while_generating_is_busy():
    generator = PreparingGenerator(views=10_000)
    pipe, out, thread = run_server(generator)
    pipe.send({"id": 1, "method": "prepare", "params": {"mesh": "first"}})
    deadline = time.time() + 10
    while not generator.log and time.time() < deadline:
        time.sleep(0.01)
    generator.views = 5  # the artist selected another head
    pipe.send({"id": 2, "method": "prepare", "params": {"mesh": "second"}})
    assert wait_for(out, lambda m: m.get("id") == 1)["error"]["code"] == Cancelled().code
    assert wait_for(out, lambda m: m.get("id") == 2)["result"] == {"ready": True, "mesh": "second"}
    assert generator.log == ["prepare first started", "prepare second started", "prepare second done"]
    generator.steps = 10_000
    pipe.send({"id": 3, "method": "generate", "params": GENERATE})
    wait_for(out, lambda m: m.get("id") == 3 and m.get("event") == "progress")
    pipe.send({"id": 4, "method": "prepare", "params": {"mesh": "third"}})
    assert wait_for(out, lambda m: m.get("id") == 4)["error"]["code"] == ErrorCode.BUSY
    pipe.send({"id": 5, "method": "cancel", "params": {"request": 3}})
    assert wait_for(out, lambda m: m.get("id") == 3 and "error" in m)["error"]["code"] == Cancelled().code
    pipe.close()
    thread.join(10)


def test_a_prepare_that_finds_no_face_answers_not_ready_with_the_problem():
    """Not an error line: the artist is only told by the generate, which meets the same problem."""
    pipe, out, thread = run_server(PreparingGenerator())
    pipe.send({"id": 1, "method": "prepare", "params": {"mesh": "faceless"}})
    pipe.send({"id": 2, "method": "prepare", "params": {"mesh": "head", "colour": 1}})
    answer = wait_for(out, lambda m: m.get("id") == 1)
    assert answer["result"]["ready"] is False
    assert answer["result"]["problem"] == {
        "code": ErrorCode.NO_FACE_ON_MESH,
        "message": "No face on the mesh.",
        "hint": "Set pins.",
    }
    assert wait_for(out, lambda m: m.get("id") == 2)["error"]["code"] == ErrorCode.BAD_REQUEST
    pipe.close()
    thread.join(10)


def test_real_subprocess_hello_and_stdout_is_protocol_only():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "backend"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, avatartex.server as s; h = s.Server.hello; "
            "s.Server.hello = lambda self: (print('stray print'), h(self))[1]; sys.exit(s.main())",
        ],
        input='{"id": 1, "method": "hello"}\n{"id": 2, "method": "shutdown"}\n',
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    hello = lines[0]["result"]
    assert hello["protocol"] == 1 and hello["engines"]["classic"]["available"] is True
    # Every engine: a machine-readable code beside the old keys (available, reason).
    engines = hello["engines"]
    assert engines["classic"]["code"] == "ok"
    assert engines["neural"]["code"] in CODES and engines["neural"]["reason"]
    assert engines["neural"]["available"] == (engines["neural"]["code"] == "ok")
    assert hello["model_cache"]
    assert {"hello", "prepare", "generate", "cancel", "shutdown"} == set(hello["methods"])
    assert {"photoreal", "painterly", "toon", "comic"} <= {s["name"] for s in hello["styles"]}
    assert all(s["seed_free"] == get_style(s["name"]).seed_free for s in hello["styles"])
    assert lines[1] == {"id": 2, "result": {"ok": True}}
    assert "stray print" in proc.stderr


# -- engine status codes in hello --------------------------------------------------------------------

CODES = {v for k, v in vars(neural.StatusCode).items() if k.isupper()}


def _neural(config: NeuralConfig) -> dict:
    found = engine_status(config)
    assert found["classic"] == {
        "available": True,
        "code": "ok",
        "reason": "runs on any CPU, nothing to download",
    }
    entry = found["neural"]
    assert entry["code"] in CODES and entry["reason"]
    assert entry["available"] == (entry["code"] == "ok")
    return entry


def test_engine_codes_packages_missing_and_no_gpu(monkeypatch):
    """The two answers a fresh artist's machine gives, decided without importing torch."""
    real_find_spec = neural.importlib.util.find_spec
    monkeypatch.setattr(
        neural.importlib.util, "find_spec", lambda name: None if name == "diffusers" else real_find_spec(name)
    )
    entry = _neural(NeuralConfig())
    assert entry["code"] == "packages_missing" and "diffusers" in entry["reason"]
    monkeypatch.undo()
    if any(real_find_spec(p) is None for p in ("torch", "diffusers", "transformers")):
        pytest.skip("the neural packages are not installed here")
    monkeypatch.setattr(neural, "accelerator_hint", lambda: "")
    entry = _neural(NeuralConfig(device="auto"))
    assert entry["code"] == "no_gpu" and entry["device"] == ""


class MissingPackageGenerator(SlowGenerator):
    """A pipeline whose Python lacks OpenCV: its import fails inside generate."""

    def generate(self, params, progress, check_cancel):
        raise ModuleNotFoundError("No module named 'cv2'", name="cv2")


def test_a_python_without_the_backends_packages_is_said_so_not_an_internal_error(monkeypatch):
    """An interpreter set in the preferences that lacks the packages: Test Backend said "Classic
    engine: available" and Generate "Internal error: ModuleNotFoundError ... Please report it"."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "cv2" else real_find_spec(name, *a)
    )
    classic = engine_status(NeuralConfig())["classic"]
    assert classic["available"] is False and classic["code"] == "packages_missing"
    assert classic["missing_packages"] == ["opencv-contrib-python"]
    assert "requirements.txt" in classic["reason"] and "Create Environment" in classic["reason"]
    monkeypatch.undo()
    pipe, out, thread = run_server(MissingPackageGenerator())
    pipe.send(
        {"id": 1, "method": "generate", "params": {"mesh": "m.npz", "portrait": "p.png", "out_dir": "o"}}
    )
    error = wait_for(out, lambda m: m.get("id") == 1 and "error" in m)["error"]
    pipe.close()
    thread.join(10)
    assert error["code"] == "packages_missing" and "'opencv-contrib-python'" in error["message"]
    assert "report" not in error["hint"] and "requirements.txt" in error["hint"]


def test_engine_codes_with_torch(monkeypatch, tmp_path):
    """cpu_only, device_unavailable, models_missing (naming the models) and ok, as torch decides them."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device: cpu_only and device_unavailable cannot be shown")
    monkeypatch.setattr(neural, "accelerator_hint", lambda: "cuda")  # a driver, but a CPU-only torch
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert _neural(NeuralConfig(device="auto"))["code"] == "cpu_only"
    assert _neural(NeuralConfig(device="cuda"))["code"] == "device_unavailable"
    entry = _neural(NeuralConfig(device="cpu", cache_dir=str(tmp_path)))
    assert entry["code"] == "models_missing" and entry["device"] == "cpu"
    assert "sd15-inpaint" in entry["missing_models"]
    from avatartex.engines.neural import hub

    monkeypatch.setattr(hub, "find_cached", lambda entry, cache="": tmp_path)
    entry = _neural(NeuralConfig(device="cpu", cache_dir=str(tmp_path)))
    assert entry["code"] == "ok" and entry["missing_models"] == []


def test_hello_with_warm_answers_after_the_warm_up(monkeypatch):
    import avatartex.server as server_module

    finished = threading.Event()

    def slow_warm_up(generator):
        time.sleep(0.3)
        finished.set()

    monkeypatch.setattr(server_module, "warm_up", slow_warm_up)
    pipe, out = Pipe(), io.StringIO()
    server = Server(pipe, out, SlowGenerator(), warm=True)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    pipe.send({"id": 1, "method": "hello"})
    pipe.send({"id": 2, "method": "hello", "params": {"warm": True}})
    deadline = time.monotonic() + 10
    while len(messages(out)) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not finished.is_set()  # a plain hello does not wait for the warm-up
    while len(messages(out)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert finished.is_set() and [m["id"] for m in messages(out)] == [1, 2]
    pipe.send({"id": 3, "method": "shutdown"})
    pipe.close()
    thread.join(5)


# -- robustness: lines json cannot hold, a request sent the moment the previous one answered -----------


def test_a_line_json_cannot_hold_is_a_parse_error_and_the_server_keeps_serving():
    pipe, out, thread = run_server(SlowGenerator())
    pipe.send('{"id": ' + "9" * 5000 + ', "method": "hello"}')  # past Python's 4300-digit int limit
    pipe.send('{"id": 1, "method": "hello", "params": {"a": ' + "[" * 200_000 + "]" * 200_000 + "}}")
    pipe.send({"id": 2, "method": "cancel"})
    pipe.send({"id": 3, "method": "shutdown"})
    thread.join(10)
    msgs = messages(out)
    assert [m["id"] for m in msgs] == [None, None, 2, 3]
    assert [m["error"]["code"] for m in msgs[:2]] == [ErrorCode.PARSE_ERROR] * 2
    assert msgs[2:] == [{"id": 2, "result": {"cancelled": False}}, {"id": 3, "result": {"ok": True}}]


class FailingGenerator:
    """Stands in for a pipeline that fails at once (a photo that does not exist)."""

    def generate(self, params, progress, check_cancel):
        raise AvatarTexError(ErrorCode.PORTRAIT_MISSING, "The photo 'p' does not exist.", "Check the path.")


@pytest.mark.parametrize("generator", [FailingGenerator(), SlowGenerator(steps=1)], ids=["fails", "succeeds"])
def test_a_request_sent_once_the_previous_answer_is_read_is_never_busy(generator):
    """A worker's thread outlives its final message by a moment; here it is held open until the test
    has its second answer, so that a server which asked the thread (not the answer) says ``busy``
    every time. A pipeline script waits for each answer before its next request: never refused."""
    pipe, out = Pipe(), io.StringIO()
    server = Server(pipe, out, generator)
    release, run = threading.Event(), server._run

    def run_then_linger(job, before, work):
        run(job, before, work)
        release.wait(10)

    server._run = run_then_linger
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        pipe.send({"id": 1, "method": "generate", "params": GENERATE})
        first = wait_for(out, lambda m: m.get("id") == 1 and "event" not in m)
        pipe.send({"id": 2, "method": "generate", "params": GENERATE})
        second = wait_for(out, lambda m: m.get("id") == 2 and "event" not in m)
    finally:
        release.set()
    assert second.get("error", {}).get("code") != ErrorCode.BUSY, second
    assert {**second, "id": 1} == first
    pipe.close()
    thread.join(10)
