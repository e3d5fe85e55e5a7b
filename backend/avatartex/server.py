"""The backend process: JSON lines on stdin/stdout (see ``protocol.py``), one generate at a time.

Run as ``python -m avatartex.server``. The main thread reads requests; worker threads run
``prepare`` and ``generate`` so that ``cancel`` and ``hello`` are answered while they work. Only
protocol lines go to stdout: at start the real stdout is kept for the protocol and file descriptor 1
is pointed at stderr, so a library that prints (or a C extension that writes to fd 1) cannot corrupt
the stream. At start a warm-up thread loads the pipeline, the face models and the compiled kernels
(``warm_up``) while the artist is still choosing a photo; a request that arrives first waits for it.

Work requests run one after another, each worker waiting for the one before it: a ``generate`` that
arrives while a ``prepare`` runs waits for it (it is nearly always the same head, whose landmarks it
then finds done); a ``prepare`` that arrives while another runs cancels it (the artist moved on to
another head); a ``prepare`` while a ``generate`` runs, or a second ``generate``, is ``busy``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import threading
import traceback
from dataclasses import dataclass, field
from typing import IO, Any

from . import __version__
from .protocol import (
    ENGINES,
    METHODS,
    PROTOCOL_VERSION,
    AvatarTexError,
    Cancelled,
    ErrorCode,
    GenerateParams,
    PrepareParams,
    Progress,
    decode_request,
    encode,
    error_message,
    progress_message,
    result_message,
)

log = logging.getLogger("avatartex.server")


@dataclass
class _Job:
    """A work request running (or waiting its turn) in its worker thread."""

    id: Any
    method: str
    """``prepare`` or ``generate``."""
    thread: threading.Thread | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    answered: bool = False
    """Set under the server's job lock as its final message is written (``Server._answer``): its
    thread may outlive the answer by a moment, and a client that has the answer may ask again."""

    def alive(self) -> bool:
        """Whether it still holds the server: its worker is running and has not answered yet."""
        return not self.answered and self.thread is not None and self.thread.is_alive()


class Server:
    """Serves requests from ``reader`` to ``writer`` until ``shutdown`` or end of input."""

    def __init__(self, reader: IO[str], writer: IO[str], generator=None, warm: bool = False) -> None:
        self._reader = reader
        self._writer = writer
        self._write_lock = threading.Lock()
        self._generator = generator
        self._jobs: list[_Job] = []
        """Work requests not yet answered, oldest first (each worker waits for the one before it)."""
        self._job_lock = threading.Lock()
        self._generator_lock = threading.Lock()
        self._warming: threading.Thread | None = None
        if warm:
            self._warming = threading.Thread(target=self._warm_up, daemon=True, name="warm-up")
            self._warming.start()

    def _warm_up(self) -> None:
        try:
            warm_up(self.generator)
        except Exception:  # the first request will meet the same problem and report it properly
            log.warning("warm-up failed:\n%s", traceback.format_exc())

    @property
    def generator(self):
        with self._generator_lock:  # the warm-up thread and the first request may both ask
            if self._generator is None:
                from .pipeline import Generator
                from .pipeline.cache import HeadStore

                # AVATARTEX_CACHE_DIR: meshes' landmarks kept across processes (the add-on's user
                # folder), so the first request after a restart on a known head skips them.
                self._generator = Generator(head_store=HeadStore.from_env())
            return self._generator

    def send(self, message: dict[str, Any]) -> None:
        """Write one protocol line; safe from any thread."""
        line = encode(message)
        with self._write_lock:
            self._writer.write(line + "\n")
            self._writer.flush()

    def _answer(self, job: _Job, message: dict[str, Any]) -> None:
        """Write ``job``'s final message, marking it answered in the same step (under the job lock):
        a request sent as soon as the answer is read must not find ``job`` still running (``busy``)."""
        with self._job_lock:
            self.send(message)
            job.answered = True

    def serve(self) -> None:
        """Read and answer requests until ``shutdown`` or the client closes stdin."""
        for line in self._reader:
            if not line.strip():
                continue
            try:
                request = decode_request(line)
            except AvatarTexError as error:
                log.warning("bad request line: %s", error.message)
                self.send(error_message(None, error))
                continue
            if request.method == "shutdown":
                self._cancel_running()
                self._wait_running()
                self.send(result_message(request.id, {"ok": True}))
                return
            try:
                self.dispatch(request)
            except AvatarTexError as error:
                self.send(error_message(request.id, error))
            except Exception as exc:  # a bug: answer it as one and keep serving
                log.error("request %s crashed:\n%s", request.id, traceback.format_exc())
                self.send(error_message(request.id, _internal(exc)))
        self._cancel_running()
        self._wait_running()

    def dispatch(self, request) -> None:
        """Answer one request (``generate`` starts in the worker and answers from there)."""
        if request.method == "hello":
            if request.params.get("warm") and self._warming is not None:
                # Answer once the warm-up is done: the add-on's environment check asks so, and the
                # compiled kernels and bytecode are then on disk before the artist's first click
                # (a first start in an empty cache compiles for about half a minute).
                self._warming.join()
            self.send(result_message(request.id, self.hello()))
        elif request.method == "cancel":
            target = request.params.get("request")
            with self._job_lock:
                targets = [job for job in self._jobs if target is None or job.id == target]
            for job in targets:
                job.cancel.set()
            self.send(result_message(request.id, {"cancelled": bool(targets)}))
        elif request.method == "generate":
            params = GenerateParams.from_dict(request.params)
            self._start(_Job(request.id, "generate"), lambda job: self._generate(job, params))
        elif request.method == "prepare":
            params = PrepareParams.from_dict(request.params)
            self._start(_Job(request.id, "prepare"), lambda job: self._prepare(job, params))
        else:
            raise AvatarTexError(
                ErrorCode.UNKNOWN_METHOD,
                f"Unknown method {request.method!r}.",
                f"Methods are {', '.join(METHODS)}.",
            )

    def hello(self) -> dict[str, Any]:
        """Versions, devices, engines (each with a machine-readable ``code``), styles, cached models."""
        from .engines import neural
        from .engines.neural import hub
        from .styles import list_styles

        # Not self.generator: building it imports the whole pipeline, which the first hello (the artist
        # waiting for the panel) need not wait for; a server without one runs the config from the env.
        config = getattr(self._generator, "neural_config", None) or neural.NeuralConfig.from_env()
        models: list[dict[str, Any]] = []
        try:
            models = hub.status(config.cache_dir)
        except ImportError:
            pass  # the neural engine's packages (huggingface_hub) are optional
        return {
            "protocol": PROTOCOL_VERSION,
            "backend_version": __version__,
            "python": platform.python_version(),
            "pid": os.getpid(),
            "devices": neural.devices(),
            "engines": engine_status(config),
            "engine_names": list(ENGINES),
            "methods": list(METHODS),
            "styles": [
                {"name": s.name, "label": s.label, "description": s.description, "seed_free": s.seed_free}
                for s in list_styles()
            ],
            "models": models,
            "model_cache": str(hub.cache_dir(config.cache_dir)),
        }

    def _start(self, job: _Job, work) -> None:
        """Queue ``job`` behind the work requests still running and start its worker, which runs
        ``work(job)`` once they have finished (see the module's docstring for who waits, who is
        cancelled and who is busy)."""
        with self._job_lock:
            self._jobs = [other for other in self._jobs if other.alive()]
            generating = next((other for other in self._jobs if other.method == "generate"), None)
            if generating is not None:
                raise AvatarTexError(
                    ErrorCode.BUSY,
                    f"Request {generating.id} is still running.",
                    "Wait for it to finish or cancel it first.",
                )
            if job.method == "prepare":
                for other in self._jobs:  # another head's prepare: the artist moved on from it
                    other.cancel.set()
            before = list(self._jobs)
            job.thread = threading.Thread(
                target=self._run, args=(job, before, work), daemon=True, name=f"{job.method}-{job.id}"
            )
            self._jobs.append(job)
            job.thread.start()

    def _run(self, job: _Job, before: list[_Job], work) -> None:
        """A worker: wait for the warm-up and the requests before this one, then ``work(job)``,
        answering its typed errors and reporting bugs as ``internal`` errors."""
        try:
            # Whatever the warm-up is loading, this request needs too: wait for it rather than load
            # a second landmarker beside it; and the requests before share the generator's caches.
            if self._warming is not None:
                self._warming.join()
            for other in before:
                other.thread.join()
            _check(job)
            work(job)
        except AvatarTexError as error:
            log.info("request %s failed: %s", job.id, error)
            self._answer(job, error_message(job.id, error))
        except Exception as exc:  # a bug: report it as such, keep serving
            log.error("request %s crashed:\n%s", job.id, traceback.format_exc())
            self._answer(job, error_message(job.id, _internal(exc)))

    def _generate(self, job: _Job, params: GenerateParams) -> None:
        def progress(p: Progress) -> None:
            self.send(progress_message(job.id, p))

        result = self.generator.generate(params, progress, lambda: _check(job))
        self._answer(job, result_message(job.id, result))

    def _prepare(self, job: _Job, params: PrepareParams) -> None:
        """Answer ``prepare``: what was found, or ``ready: false`` with the ``problem`` (not an error
        line: nothing went wrong with the request, and the ``generate`` reports it in full)."""
        try:
            result = self.generator.prepare(params, lambda: _check(job))
        except Cancelled:
            raise
        except AvatarTexError as error:
            result = {"ready": False, "problem": error.to_dict()}
        except Exception as exc:  # a bug: logged; the generate meets it again and reports it
            log.error("prepare %s crashed:\n%s", job.id, traceback.format_exc())
            result = {"ready": False, "problem": _internal(exc).to_dict()}
        self._answer(job, result_message(job.id, result))

    def _cancel_running(self) -> None:
        with self._job_lock:
            for job in self._jobs:
                job.cancel.set()

    def _wait_running(self) -> None:
        with self._job_lock:
            jobs = list(self._jobs)
        for job in jobs:
            if job.thread is not None:
                job.thread.join()


def _check(job: _Job) -> None:
    """Raise ``Cancelled`` when the client cancelled ``job``."""
    if job.cancel.is_set():
        raise Cancelled()


def engine_status(config) -> dict[str, dict[str, Any]]:
    """Each engine, for ``hello``: ``available``; ``code``, for programs (one of ``neural.StatusCode``:
    ``ok``, or why not); ``reason``, the same in words; for the neural engine the ``device`` it would
    use and the default models not downloaded (``missing_models``). ``config``: a ``NeuralConfig``."""
    from .engines import neural

    found = neural.status(config)
    missing = missing_packages()
    classic = {
        "available": True,
        "code": neural.StatusCode.OK,
        "reason": "runs on any CPU, nothing to download",
    }
    if missing:
        classic = {
            "available": False,
            "code": neural.StatusCode.PACKAGES_MISSING,
            "reason": f"this Python lacks {', '.join(missing)}: {INSTALL_HINT}",
            "missing_packages": missing,
        }
    return {
        "classic": classic,
        "neural": {
            "available": found.ok,
            "code": found.code,
            "reason": found.reason,
            "device": found.device,
            "missing_models": list(found.missing_models),
        },
    }


def warm_up(generator) -> None:
    """Load what the first ``generate`` of a new process would otherwise wait for, while the artist
    is still choosing a photo: the pipeline's modules and the libraries it imports on first use, the
    face landmarker and the person segmenter, and the compiled kernels (from numba's disk cache)."""
    import cv2
    import numpy as np
    import scipy.interpolate  # noqa: F401  (registration's warp)
    import scipy.ndimage  # noqa: F401  (UV island padding)
    import scipy.optimize  # noqa: F401  (registration's camera fit)
    import skimage.draw  # noqa: F401  (the atlas's face region)
    import trimesh  # noqa: F401  (mesh loading)

    from . import atlas, atlas_filters, bake, image_io, imaging, projection, raster, shading
    from .engines.classic import inpaint, latent
    from .pipeline import steps  # noqa: F401  (every step's imports)

    kernels = (raster, imaging, image_io, atlas, atlas_filters, bake, projection, shading, inpaint, latent)
    for module in kernels:
        module.warm_up()
    # OpenCV builds its sRGB <-> Lab tables on the first float conversion (0.1 s; the projection's
    # skin test, the styles' palettes): one pixel builds them.
    pixel = np.zeros((1, 1, 3), np.float32)
    cv2.cvtColor(cv2.cvtColor(pixel, cv2.COLOR_RGB2Lab), cv2.COLOR_Lab2RGB)
    # mediapipe's import (0.5 s) and its graphs, which the first photo's reading would wait for.
    for model in (generator.landmarker, generator.segmenter):
        if hasattr(model, "warm_up"):
            model.warm_up()
    log.info("warm: pipeline loaded")


CLASSIC_PACKAGES = {
    "numpy": "numpy",
    "scipy": "scipy",
    "cv2": "opencv-contrib-python",
    "mediapipe": "mediapipe",
    "PIL": "pillow",
    "numba": "numba",
    "pywt": "PyWavelets",
    "skimage": "scikit-image",
    "trimesh": "trimesh",
    "threadpoolctl": "threadpoolctl",
}
"""The modules the classic engine imports, by the package (backend/requirements.txt) that gives each."""

INSTALL_HINT = (
    "install backend/requirements.txt into this Python (pip install -r backend/requirements.txt), or "
    "let the Blender add-on make its own (Preferences: Managed Environment, Create Environment)"
)


NEURAL_INSTALL_HINT = (
    "install backend/requirements-neural.txt into this Python (the neural engine's packages), or let the "
    "Blender add-on make its own with them (Preferences: Neural Engine Packages, Create Environment)"
)


def missing_packages() -> list[str]:
    """The packages of ``CLASSIC_PACKAGES`` this Python cannot import (found without importing them)."""
    import importlib.util

    return [
        package for module, package in CLASSIC_PACKAGES.items() if importlib.util.find_spec(module) is None
    ]


def _internal(exc: Exception) -> AvatarTexError:
    if isinstance(exc, ModuleNotFoundError) and exc.name:  # the backend's Python lacks a package
        module = exc.name.split(".")[0]
        package = CLASSIC_PACKAGES.get(module, module)
        hint = INSTALL_HINT if module in CLASSIC_PACKAGES else NEURAL_INSTALL_HINT
        return AvatarTexError(
            ErrorCode.PACKAGES_MISSING,
            f"The backend's Python ({sys.executable}) lacks the package {package!r}, which AvatarTex needs.",
            hint[0].upper() + hint[1:] + ".",
        )
    return AvatarTexError(
        ErrorCode.INTERNAL,
        f"Internal error: {type(exc).__name__}: {exc}",
        "Please report it with the backend log.",
    )


def _protocol_stdout() -> IO[str]:
    """Keep the real stdout for the protocol and send anything else written to fd 1 to stderr."""
    protocol_fd = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "w", encoding="utf-8", buffering=1)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m avatartex.server``."""
    parser = argparse.ArgumentParser(prog="avatartex-server", description=__doc__.splitlines()[0])
    parser.add_argument("--log-file", help="also write the log to this file")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if args.log_file:
        handlers.append(logging.FileHandler(args.log_file, encoding="utf-8"))
    logging.basicConfig(
        level=args.log_level.upper(),
        handlers=handlers,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    writer = _protocol_stdout()
    reader = open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False)
    log.info("AvatarTex backend %s (protocol %d) ready, pid %d", __version__, PROTOCOL_VERSION, os.getpid())
    Server(reader, writer, warm=True).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
