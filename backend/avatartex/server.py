"""The backend process: JSON lines on stdin/stdout (see ``protocol.py``), one generate at a time.

Run as ``python -m avatartex.server``. The main thread reads requests; a worker thread runs
``generate`` so that ``cancel`` and ``hello`` are answered while it works. Only protocol lines go to
stdout: at start the real stdout is kept for the protocol and file descriptor 1 is pointed at stderr,
so a library that prints (or a C extension that writes to fd 1) cannot corrupt the stream. At start a
warm-up thread loads the pipeline, the face models and the compiled kernels (``warm_up``) while the
artist is still choosing a photo; a ``generate`` that arrives first waits for it to finish.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import threading
import traceback
from typing import IO, Any

from . import __version__
from .protocol import (
    ENGINES,
    PROTOCOL_VERSION,
    AvatarTexError,
    Cancelled,
    ErrorCode,
    GenerateParams,
    Progress,
    decode_request,
    encode,
    error_message,
    progress_message,
    result_message,
)

log = logging.getLogger("avatartex.server")


class Server:
    """Serves requests from ``reader`` to ``writer`` until ``shutdown`` or end of input."""

    def __init__(self, reader: IO[str], writer: IO[str], generator=None, warm: bool = False) -> None:
        self._reader = reader
        self._writer = writer
        self._write_lock = threading.Lock()
        self._generator = generator
        self._job: tuple[Any, threading.Event, threading.Thread] | None = None
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
            self.send(result_message(request.id, self.hello()))
        elif request.method == "cancel":
            target = request.params.get("request")
            with self._job_lock:
                running = self._job
            cancelled = running is not None and (target is None or target == running[0])
            if cancelled:
                running[1].set()
            self.send(result_message(request.id, {"cancelled": bool(cancelled)}))
        elif request.method == "generate":
            params = GenerateParams.from_dict(request.params)
            self._start(request.id, params)
        else:
            raise AvatarTexError(
                ErrorCode.UNKNOWN_METHOD,
                f"Unknown method {request.method!r}.",
                "Methods are hello, generate, cancel and shutdown.",
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
            "styles": [
                {"name": s.name, "label": s.label, "description": s.description} for s in list_styles()
            ],
            "models": models,
            "model_cache": str(hub.cache_dir(config.cache_dir)),
        }

    def _start(self, request_id, params: GenerateParams) -> None:
        with self._job_lock:
            if self._job is not None and self._job[2].is_alive():
                raise AvatarTexError(
                    ErrorCode.BUSY,
                    f"Request {self._job[0]} is still running.",
                    "Wait for it to finish or cancel it first.",
                )
            cancel = threading.Event()
            worker = threading.Thread(
                target=self._run,
                args=(request_id, params, cancel),
                daemon=True,
                name=f"generate-{request_id}",
            )
            self._job = (request_id, cancel, worker)
            worker.start()

    def _run(self, request_id, params: GenerateParams, cancel: threading.Event) -> None:
        def check_cancel() -> None:
            if cancel.is_set():
                raise Cancelled()

        def progress(p: Progress) -> None:
            self.send(progress_message(request_id, p))

        try:
            if self._warming is not None:
                # Whatever the warm-up is loading, this request needs too: wait for it rather than
                # load a second landmarker beside it.
                self._warming.join()
            check_cancel()
            result = self.generator.generate(params, progress, check_cancel)
            self.send(result_message(request_id, result))
        except AvatarTexError as error:
            log.info("request %s failed: %s", request_id, error)
            self.send(error_message(request_id, error))
        except Exception as exc:  # a bug: report it as such, keep serving
            log.error("request %s crashed:\n%s", request_id, traceback.format_exc())
            self.send(error_message(request_id, _internal(exc)))

    def _cancel_running(self) -> None:
        with self._job_lock:
            if self._job is not None:
                self._job[1].set()

    def _wait_running(self) -> None:
        with self._job_lock:
            job = self._job
        if job is not None:
            job[2].join()


def engine_status(config) -> dict[str, dict[str, Any]]:
    """Each engine, for ``hello``: ``available``; ``code``, for programs (one of ``neural.StatusCode``:
    ``ok``, or why not); ``reason``, the same in words; for the neural engine the ``device`` it would
    use and the default models not downloaded (``missing_models``). ``config``: a ``NeuralConfig``."""
    from .engines import neural

    found = neural.status(config)
    return {
        "classic": {
            "available": True,
            "code": neural.StatusCode.OK,
            "reason": "runs on any CPU, nothing to download",
        },
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
    import scipy.interpolate  # noqa: F401  (registration's warp)
    import scipy.ndimage  # noqa: F401  (UV island padding)
    import scipy.optimize  # noqa: F401  (registration's camera fit)
    import skimage.draw  # noqa: F401  (the atlas's face region)
    import trimesh  # noqa: F401  (mesh loading)

    from . import atlas, atlas_filters, bake, imaging, projection, raster
    from .engines.classic import inpaint
    from .pipeline import steps  # noqa: F401  (every step's imports)

    for module in (raster, imaging, atlas, atlas_filters, bake, projection, inpaint):
        module.warm_up()
    generator.landmarker  # noqa: B018  (created on first use)
    generator.segmenter  # noqa: B018
    log.info("warm: pipeline loaded")


def _internal(exc: Exception) -> AvatarTexError:
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
