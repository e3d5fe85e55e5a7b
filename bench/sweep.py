"""A broad ground-truth sweep (issue 8, DESIGN.md §5): many heads, cameras, lights, skins, backgrounds
and mesh transforms, each case run through the real pipeline and compared with the known truth.

    PYTHONPATH=backend python bench/sweep.py [--quick] [--json rows.json] [--pictures DIR]

Heads: the scanned head of ``../shared/assets`` (skipped, loudly, when absent), the project's demo
head and its stylized variants (``demo_head.STYLIZED_SHAPES``). Each case draws, from a seeded
random design that keeps every level of every factor about equally often (a Latin hypercube for
the continuous ones): camera yaw 0-40° (either side), pitch ±12°, roll ±10°, vertical field of view
15-60°, head size in the frame and an off-centre aim; a light set-up (front, side, top, grazing from
the far side, from below, two lights) with or without cast shadows; a skin (smooth with blotches,
painted stripes, a photograph); a background (flat, gradient, photograph); a portrait size and
aspect; PNG or JPEG; an output texture of 1024 or 512. Every third demo-family case of the design
is run again with a *made-up* skin (``m`` ids): eyes, brows and lips painted where the sculpture
has them, which a real face has and the other skins do not (``made_up_cases``), and once more on
the same heads with their eyeballs also separate parts of the mesh (``e`` ids, ``eyeball_cases``),
as character meshes model eyes; every fourth made-up case once more with the photo turned a
quarter, a half or three quarters (``t`` ids, ``turned_cases``: a phone photo whose orientation tag
was lost); and every fourth made-up case (from the second) with the key lights' white shine on the
skin (``h`` ids, ``shiny_cases``: oily skin in a flash photo, which the albedo must not keep); every
third case of the design (from the third) and every third made-up case through a camera's filmic tone
curve (``c`` and ``cm`` ids, ``tone_cases``: the design's renders have a plain gamma, a photo's shoulder
whitens its lit skin). An
invariance block feeds one portrait to a mesh and to copies of
it moved by :data:`groundtruth.TRANSFORMS` (45° yaw, 70° about a tilted axis, Z-up, upside down,
scale 0.01 and 100, each also shifted away from the origin). The pipeline is
never told the camera, the light or the transform (no facing, no up hint, no pins).

Per case, against the truth:

* ``psnr_visible`` — dB on the texels the true camera sees (in frame, not occluded, facing it by
  cos > 0.3), after the one global colour gain the pipeline cannot know.
* ``psnr_eyeballs`` — on heads with separate eyeballs (``e`` cases) the same on the seen texels of
  the eyeballs alone (``groundtruth.eyeball_texels``), after the same gain.
* ``fine_corr`` — Pearson correlation of the produced and the true fine band (luminance minus its
  σ = 2 texel blur: wavelengths under ~12 texels) on the same texels.
* ``crease_corr`` and ``shading_corr`` — what of the true light stays in the albedo
  (``groundtruth.shading_correlations``): the correlation of the fine-band magnitudes of the
  log-luminance error and of the true shading (creases: eyelids, nostrils, lips), and of their
  large scales. ``crease_floor`` is what the crease measure gives for the truth itself blurred by
  0.7 texel (no shading in it at all: the fine error of any slightly soft texture sits at the
  features, and the features sit at the creases); ``crease_sign`` the same correlation with signs
  (shading kept in the albedo > 0, put back inverted < 0, softness alone ~0).
* ``fine_contrast`` — the produced fine band's standard deviation over the truth's (issue 10:
  >= 0.8; above 1 is noise or streaks).
* ``misplacement`` — the *true* misplacement: for the surface points behind the seen texels, the
  mean distance between where the true camera projects them into the portrait and where the
  pipeline's registration (camera, warp and dense correction, exactly what the projection step
  reads the photo through) put them, divided by the true eye distance in the portrait (pixels, eye
  centres through the true camera). ``misplacement_p90`` is its 90th percentile.
* ``fov_error`` — |fitted - true| / true vertical field of view (report.json, ``registration``); the
  summary splits it by the report's ``fov_source`` (the head's outline or the portrait-lens prior).
* ``found`` — the pipeline produced a texture; a typed error (``no_face_in_portrait``,
  ``no_face_on_mesh``...) is a case not found, recorded with its code; anything else is a crash,
  recorded too; the sweep goes on.
* beside them the report's own figures: ``registration_error``, ``coverage``, ``quality.verdict``.

The summary prints median and worst of each, the report's error against the truth, the confusion
table of the verdict (misplaced = true misplacement > 0.05 eye distances), and the invariance figure:
mean |texture(copy) - texture(original)| in /255 over the UV-covered texels.

``--paint-eyes`` is an oracle, not the product: the demo family's eyeballs (known spheres) are
painted on every render the registration reads the mesh from (``mesh_reading.EyePainter``), as a
registration that recognised a mesh's eyes as eyes would see them; the scan is read as always.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import sys
import time
import traceback
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
if importlib.util.find_spec("avatartex") is None:  # run from a checkout without PYTHONPATH=backend
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

import groundtruth as gt  # noqa: E402
import mesh_reading  # noqa: E402
from avatartex.face import turn_matrix  # noqa: E402

MISPLACED = 0.05
"""True misplacement (eye distances) above which a result is wrong and must be flagged."""

LIGHTS = gt.LIGHTS
SKINS = tuple(gt.TEXTURES)
BACKGROUNDS = ("flat", "gradient", "photo")
PORTRAIT_SIZES = ((512, 512), (768, 1024), (1024, 1024), (1280, 960), (640, 480), (1200, 1600))
JPEG = (0, 92, 60)
"""JPEG quality, 0 for PNG."""
STYLIZED = ("big_eyes", "long_nose", "wide_nose", "wide_jaw", "small_chin", "big_forehead")


@dataclass
class Case:
    """One portrait and one mesh: everything the truth needs to rebuild them."""

    id: str
    head: str
    transform: str
    yaw: float
    pitch: float
    roll: float
    fov: float
    fill: float
    shift_x: float
    shift_y: float
    light: str
    shadows: bool
    skin: str
    background: str
    width: int
    height: int
    jpeg: int
    size: int
    seed: int
    group: str = ""
    """Cases of one invariance group share the portrait; the one with transform ``none`` is the reference."""
    soft: bool = False
    """A soft light: the key lights at half strength over an ambient the head occludes
    (``groundtruth.lights_for``'s ``soft``: the creases' own darkness, as in a softbox portrait)."""
    shine: float = 0.0
    """The skin's white shine on top of the render (``groundtruth.render_portrait``'s ``shine``)."""
    tone: str = ""
    """The camera's tone curve (``groundtruth.camera_response``): empty, a render's plain gamma."""


def _levels(values, n: int, rng: np.random.Generator) -> list:
    """``n`` draws that use every level about equally often, in random order."""
    picks = [values[i % len(values)] for i in range(n)]
    order = rng.permutation(n)
    return [picks[i] for i in order]


def _lhs(lo: float, hi: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Latin hypercube draws of one factor: one in each of ``n`` strata, shuffled."""
    return lo + (hi - lo) * (rng.permutation(n) + rng.uniform(size=n)) / n


def design(n: int, heads: list[str], seed: int, sizes=(1024, 512)) -> list[Case]:
    """A seeded, balanced random design of ``n`` cases over every factor but the mesh transform."""
    rng = np.random.default_rng(seed)
    yaw = _lhs(0, 40, n, rng) * rng.choice([-1, 1], n)
    pitch, roll, fov = _lhs(-12, 12, n, rng), _lhs(-10, 10, n, rng), _lhs(15, 60, n, rng)
    fill, sx, sy = _lhs(0.4, 0.75, n, rng), _lhs(-0.6, 0.6, n, rng), _lhs(-0.5, 0.5, n, rng)
    columns = {
        "head": _levels(heads, n, rng),
        "light": _levels(LIGHTS, n, rng),
        "shadows": _levels((False, True), n, rng),
        "skin": _levels(SKINS, n, rng),
        "background": _levels(BACKGROUNDS, n, rng),
        "portrait": _levels(PORTRAIT_SIZES, n, rng),
        "jpeg": _levels(JPEG, n, rng),
        "size": _levels(sizes, n, rng),
    }
    cases = []
    for i in range(n):
        w, h = columns["portrait"][i]
        cases.append(
            Case(
                f"r{i:03d}",
                columns["head"][i],
                "none",
                round(float(yaw[i]), 1),
                round(float(pitch[i]), 1),
                round(float(roll[i]), 1),
                round(float(fov[i]), 1),
                round(float(fill[i]), 2),
                round(float(sx[i]), 2),
                round(float(sy[i]), 2),
                columns["light"][i],
                bool(columns["shadows"][i]),
                columns["skin"][i],
                columns["background"][i],
                int(w),
                int(h),
                int(columns["jpeg"][i]),
                int(columns["size"][i]),
                int(rng.integers(1, 4)),
            )
        )
    # Cases of one head together: its landmarks and atlas are computed once.
    cases.sort(key=lambda c: (heads.index(c.head), c.id))
    return cases


def invariance_cases(head: str, transforms: list[str], size: int) -> list[Case]:
    """One ordinary portrait (yaw 15°, front light, blotches) for a mesh and its moved copies."""
    cases = []
    for name in ["none", *transforms]:
        cases.append(
            Case(
                f"inv-{head}-{name}",
                head,
                name,
                15.0,
                4.0,
                0.0,
                30.0,
                0.6,
                0.0,
                0.0,
                "front",
                False,
                "blotches",
                "flat",
                1024,
                1024,
                0,
                size,
                1,
                group=f"inv-{head}",
            )
        )
    return cases


def as_photographed(turns: int, size, fov_y_deg: float | None) -> tuple[tuple[int, int], float | None]:
    """The portrait's frame (w, h) before the pipeline turned it upright by ``turns`` quarter turns
    (``size``: the turned frame it read), and the turned frame's vertical field of view as the
    portrait's (None stays None)."""
    frame = (size[1], size[0]) if turns % 2 else (size[0], size[1])
    if fov_y_deg is not None and turns % 2:
        fov_y_deg = float(np.degrees(2 * np.arctan(np.tan(np.radians(fov_y_deg) / 2) * frame[1] / frame[0])))
    return frame, fov_y_deg


class Sweep:
    """Heads, truths and one Generator kept across cases."""

    def __init__(self, work: Path, scan: gt.Head | None, demo_resolution: int, variant_resolution: int):
        from avatartex.pipeline import Generator

        self.work = work
        self.heads: dict[str, gt.Head] = {}
        self._scan = scan
        self._res = (demo_resolution, variant_resolution)
        self.generator = Generator(cache_size=32)
        # the invariance block's copies searched for their faces, as in processes of their own
        self.generator.heads.copies = False
        self.tap = gt.RegistrationTap(self.generator)
        self._surfaces: dict = {}
        self._truths: dict = {}
        self._meshes: dict = {}

    def head(self, name: str) -> gt.Head:
        if name not in self.heads:
            if name.endswith(EYEBALLS):
                self.heads[name] = gt.with_eyeballs(self.head(name.removesuffix(EYEBALLS)))
            elif name == "scan":
                self.heads[name] = self._scan
            elif name == "demo":
                self.heads[name] = gt.demo_head("", self._res[0])
            else:
                self.heads[name] = gt.demo_head(name.removeprefix("demo-"), self._res[1])
        return self.heads[name]

    def surface(self, head: gt.Head, size: int) -> gt.TexelSurface:
        key = (head.name, size)
        if key not in self._surfaces:
            self._surfaces[key] = gt.texel_surface(head, size)
        return self._surfaces[key]

    def truth(self, head: gt.Head, size: int, skin: str, seed: int) -> np.ndarray:
        key = (head.name, size, skin, seed)
        if key not in self._truths:
            self._truths[key] = gt.truth_texture(head, self.surface(head, size), skin, seed)
        return self._truths[key]

    def mesh_file(self, head: gt.Head, where: gt.Placement, group: str) -> Path:
        """The file the pipeline reads: the scan's own .glb untransformed (as a user gives it),
        a capture .npz otherwise (also for the reference of an invariance group, so that the copies
        differ from it by the transform alone)."""
        if where.name == "none" and head.path is not None and not group:
            return head.path
        key = (head.name, where.name)
        if key not in self._meshes:
            path = self.work / "meshes" / f"{head.name}-{where.name}.npz"
            path.parent.mkdir(parents=True, exist_ok=True)
            self._meshes[key] = gt.write_capture(head, where, path)
        return self._meshes[key]

    def portrait(self, case: Case, head: gt.Head, truth: np.ndarray, folder: Path) -> tuple[gt.Render, Path]:
        from avatartex.image_io import save_png
        from PIL import Image

        camera = gt.portrait_camera(
            head,
            case.yaw,
            case.pitch,
            case.roll,
            case.fov,
            case.width,
            case.height,
            case.fill,
            (case.shift_x, case.shift_y),
        )
        lights, ambient = gt.lights_for(case.light, case.yaw, case.shadows, case.soft)
        rng = np.random.default_rng(zlib.crc32(case.id.encode()) if not case.group else 7)
        background = gt.background_image(case.background, case.width, case.height, rng)
        render = gt.render_portrait(head, truth, camera, lights, ambient, background, case.shine, case.tone)
        if case.jpeg:
            path = folder / "portrait.jpg"
            Image.fromarray((np.clip(render.image, 0, 1) * 255 + 0.5).astype(np.uint8)).save(
                path, quality=case.jpeg
            )
        else:
            path = save_png(folder / "portrait.png", render.image)
        return render, path

    def run(self, case: Case) -> tuple[dict, dict]:
        """Run one case; returns its row and what the pictures need."""
        from avatartex.image_io import load_texture
        from avatartex.protocol import AvatarTexError, GenerateParams

        started = time.perf_counter()
        head = self.head(case.head)
        folder = self.work / "cases" / case.id
        folder.mkdir(parents=True, exist_ok=True)
        surface = self.surface(head, case.size)
        truth = self.truth(head, case.size, case.skin, case.seed)
        render, portrait_path = self.portrait(case, head, truth, folder)
        where = gt.placement(case.transform, head)
        mesh_path = self.mesh_file(head, where, case.group)
        row = {**asdict(case), "found": False, "error": ""}
        extra = {"portrait": render.image, "truth": truth, "camera": render.camera, "surface": surface}
        self.tap.last = None
        params = GenerateParams(
            mesh=str(mesh_path),
            portrait=str(portrait_path),
            out_dir=str(folder),
            style="photoreal",
            size=case.size,
            engine="classic",
        )
        try:
            result = self.generator.generate(params)
        except gt.RegistrationTap.Registered:  # --registration-only: the camera and warp measured alone
            reg = self.tap.last
            visible = gt.seen_texels(head, surface, render)
            # The camera's pixels are the photo's as the pipeline read it, turned upright (see below).
            extras = getattr(self.tap.face, "extras", None) or {}
            turns = int(extras.get("quarter_turns", 0)) % 4
            size = (reg.camera.width, reg.camera.height)
            frame, fov_fit = as_photographed(turns, size, float(reg.camera.fov_y_deg))
            row.update(
                found=True,
                fov_fit=round(fov_fit, 2),
                fov_error=round(abs(fov_fit - case.fov) / case.fov, 3),
                fov_source=reg.fov_source,
                visible_texels=int(visible.sum()),
            )
            scale = case.width / float(frame[0])
            self._misplacement(row, extra, head, where, surface, visible, render, scale, turns, frame)
            row["seconds"] = round(time.perf_counter() - started, 2)
            return row, extra
        except AvatarTexError as exc:
            row["error"] = exc.code
            row["seconds"] = round(time.perf_counter() - started, 2)
            return row, extra
        except Exception as exc:  # a crash is a finding, not the end of the sweep
            traceback.print_exc(limit=3, file=sys.stderr)
            row["error"] = f"crash: {type(exc).__name__}: {exc}"[:200]
            row["seconds"] = round(time.perf_counter() - started, 2)
            return row, extra
        report = result["report"]
        produced = load_texture(result["texture"])
        visible = gt.seen_texels(head, surface, render)
        registration = report.get("registration") or {}
        # The pipeline turns a photo whose face lies on its side upright before reading it
        # (report.json portrait.quarter_turns): its camera's pixels and vertical field of view are
        # the turned frame's, brought back to the portrait's here.
        read = report.get("portrait") or {}
        turns = int(read.get("quarter_turns", 0)) % 4
        size = read.get("size", [case.width, case.height])
        frame, fov_fit = as_photographed(turns, size, registration.get("fov_y_deg"))
        quality = report.get("quality")
        row.update(
            found=True,
            psnr_visible=round(gt.psnr_visible(produced, truth, visible), 2),
            fine_corr=round(gt.fine_correlation(produced, truth, surface.mask, visible), 3),
            fov_fit=None if fov_fit is None else round(float(fov_fit), 2),
            fov_error=None if fov_fit is None else round(abs(float(fov_fit) - case.fov) / case.fov, 3),
            fov_source=registration.get("fov_source"),
            registration_error=report.get("registration_error"),
            coverage=report.get("coverage"),
            verdict=quality.get("verdict") if isinstance(quality, dict) else None,
            signals=quality.get("signals") if isinstance(quality, dict) else None,
            estimated_error=quality.get("estimated_error_iod") if isinstance(quality, dict) else None,
            landmarks_source=report.get("landmarks_source"),
            dense_alignment=bool((report.get("dense_alignment") or {}).get("applied", False)),
            visible_texels=int(visible.sum()),
            seconds_pipeline=report.get("timings", {}).get("total"),
            seconds_register=report.get("timings", {}).get("register"),
        )
        if case.head.endswith(EYEBALLS):
            eyeballs = visible & gt.eyeball_texels(visible.shape[0])
            corrected = gt.gain_corrected(produced, truth, visible)
            row["psnr_eyeballs"] = round(gt.psnr(corrected, truth, eyeballs), 2) if eyeballs.any() else None
        lights, ambient = gt.lights_for(case.light, case.yaw, case.shadows, case.soft)
        shading = gt.texel_shading(head, surface, lights, ambient)
        crease, large = gt.shading_correlations(produced, truth, shading, surface.mask, visible)
        row["crease_corr"], row["shading_corr"] = round(crease, 3), round(large, 3)
        row["crease_floor"] = round(gt.crease_floor(truth, shading, surface.mask, visible), 3)
        row["crease_sign"] = round(gt.crease_sign(produced, truth, shading, surface.mask, visible), 3)
        row["fine_contrast"] = round(gt.fine_contrast(produced, truth, surface.mask, visible), 3)
        scale = case.width / float(frame[0])
        self._misplacement(row, extra, head, where, surface, visible, render, scale, turns, frame)
        extra["produced"] = produced
        extra["visible"] = visible
        row["seconds"] = round(time.perf_counter() - started, 2)
        return row, extra

    def _misplacement(
        self, row, extra, head, where, surface, visible, render, scale: float, turns: int, frame
    ) -> None:
        """The true misplacement of the tapped registration into ``row`` (None where nothing was
        tapped), and the projected points the pictures draw into ``extra``; ``scale`` takes the
        pixels of the portrait the pipeline read (it may have rescaled it) to ours, after its
        ``turns`` quarter turns of a photo of size ``frame`` (w, h) are taken back."""
        reg = self.tap.last
        if reg is None:
            row["misplacement"] = row["misplacement_p90"] = None
            return
        back = cv2.invertAffineTransform(turn_matrix(turns, frame[0], frame[1]))

        def fitted(points: np.ndarray) -> np.ndarray:
            turned = np.asarray(self.tap.project(points), np.float64)
            return (turned @ back[:, :2].T + back[:, 2]) * scale

        row["outline"] = getattr(reg, "outline", None) or None
        mean, p90 = gt.misplacement(head, where, surface, visible, render.camera, fitted)
        row["misplacement"], row["misplacement_p90"] = round(mean, 4), round(p90, 4)
        pts = surface.positions[visible[surface.mask]]
        pts = pts[np.linspace(0, len(pts) - 1, min(len(pts), 400)).astype(int)] if len(pts) else pts
        extra["true_xy"] = render.camera.project(pts)[0]
        extra["fitted_xy"] = fitted(where.apply(pts)) if len(pts) else pts[:, :2]


# --- printing -----------------------------------------------------------------------------------------

COLUMNS = (
    ("id", "{:<22}"),
    ("head", "{:<17}"),
    ("transform", "{:<11}"),
    ("yaw", "{:>6.1f}"),
    ("pitch", "{:>6.1f}"),
    ("roll", "{:>6.1f}"),
    ("fov", "{:>5.1f}"),
    ("light", "{:<8}"),
    ("shadows", "{!s:<5}"),
    ("skin", "{:<8}"),
    ("background", "{:<8}"),
    ("width", "{:>5}"),
    ("height", "{:>5}"),
    ("jpeg", "{:>3}"),
    ("size", "{:>5}"),
    ("psnr_visible", "{:>6.2f}"),
    ("fine_corr", "{:>6.3f}"),
    ("misplacement", "{:>6.3f}"),
    ("fov_fit", "{:>6.1f}"),
    ("registration_error", "{:>7.4f}"),
    ("coverage", "{:>6.3f}"),
    ("verdict", "{!s:<8}"),
    ("seconds", "{:>6.1f}"),
)
SHORT = {
    "psnr_visible": "psnr",
    "fine_corr": "fine",
    "misplacement": "misplc",
    "registration_error": "reg_err",
    "coverage": "cov",
    "shadows": "shad",
    "background": "bg",
    "seconds": "s",
}


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    width = int("".join(ch for ch in fmt.split(":")[1] if ch.isdigit() or ch == ".").split(".")[0] or 0)
    if value is None:
        text = "-" if row.get("found") or key not in ("psnr_visible",) else (row.get("error") or "-")[:width]
        return f"{text:>{width}}" if ">" in fmt else f"{text:<{width}}"
    return fmt.format(value)


def print_header() -> None:
    cells = []
    for key, fmt in COLUMNS:
        width = int("".join(ch for ch in fmt.split(":")[1] if ch.isdigit() or ch == ".").split(".")[0] or 0)
        name = SHORT.get(key, key)[:width]
        cells.append(f"{name:>{width}}" if ">" in fmt else f"{name:<{width}}")
    print(" ".join(cells), flush=True)


def print_row(row: dict) -> None:
    line = " ".join(_cell(row, key, fmt) for key, fmt in COLUMNS)
    if not row.get("found"):
        line += f"  NOT FOUND: {row.get('error')}"
    print(line, flush=True)


def _finite(rows: list[dict], key: str) -> np.ndarray:
    return np.array([r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])], np.float64)


def _largest(values: np.ndarray) -> float:
    """The value furthest from zero (a correlation's worst case, whatever its sign)."""
    return float(values[np.argmax(np.abs(values))])


def confusion(found: list[dict]) -> dict:
    """The report's verdict against the truth (misplaced = true misplacement > MISPLACED): per
    verdict, and flagged (any verdict but good) / not; with how many distinct portraits the good
    cases are (the invariance block shows one portrait to several moved copies of a mesh)."""
    measured = [r for r in found if r.get("misplacement") is not None]
    bad = [r for r in measured if r["misplacement"] > MISPLACED]
    good = [r for r in measured if r["misplacement"] <= MISPLACED]

    def by_verdict(group: list[dict]) -> dict:
        return {v: sum(1 for r in group if r.get("verdict") == v) for v in ("good", "doubtful", "failed")}

    return {
        "has_verdict": any(r.get("verdict") is not None for r in found),
        "misplaced": len(bad),
        "misplaced_flagged": sum(1 for r in bad if r.get("verdict") not in (None, "good")),
        "ok": len(good),
        "ok_flagged": sum(1 for r in good if r.get("verdict") not in (None, "good")),
        "ok_portraits": len({r.get("group") or r["id"] for r in good}),
        "misplaced_by_verdict": by_verdict(bad),
        "ok_by_verdict": by_verdict(good),
    }


def verdict_held_out(found: list[dict]) -> dict | None:
    """The verdict's calibration refitted without each head family and judged on it
    (``verdict.py``): what the confusion table would be on a head the constants never saw."""
    import verdict

    rows = verdict.usable(found, "sweep")
    if len(rows) < 2 * verdict.MIN_ROWS_TO_FIT:
        return None
    results, _ = verdict.held_out(rows, verdict.family)
    vouched = [j for j in results if j["confirmed"] or j["read"]]
    return {**verdict.figures(results), "vouched": verdict.figures(vouched) if vouched else None}


def summary(rows: list[dict], invariance: list[dict]) -> dict:
    """Median and worst of every measure, the report against the truth, the confusion table."""
    found = [r for r in rows if r.get("found")]
    out: dict = {
        "cases": len(rows),
        "found": len(found),
        "face_found_rate": round(len(found) / max(len(rows), 1), 3),
    }
    stats = {}
    for key, worst in (
        ("psnr_visible", np.min),
        ("psnr_eyeballs", np.min),
        ("fine_corr", np.min),
        ("crease_corr", _largest),
        ("shading_corr", _largest),
        ("crease_floor", _largest),
        ("crease_sign", _largest),
        ("fine_contrast", np.min),
        ("misplacement", np.max),
        ("misplacement_p90", np.max),
        ("fov_error", np.max),
        ("registration_error", np.max),
        ("coverage", np.min),
        ("seconds_register", np.max),
    ):
        values = _finite(found, key)
        stats[key] = (
            {
                "median": round(float(np.median(values)), 4),
                "worst": round(float(worst(values)), 4),
                "n": len(values),
            }
            if len(values)
            else {"median": None, "worst": None, "n": 0}
        )
    out["stats"] = stats
    pairs = [
        (r["registration_error"], r["misplacement"])
        for r in found
        if r.get("misplacement") is not None and r.get("registration_error") is not None
    ]
    if len(pairs) >= 3:
        rep, true = np.array(pairs).T
        from scipy.stats import spearmanr

        out["report_vs_truth"] = {
            "median_ratio_report_over_true": round(float(np.median(rep / np.maximum(true, 1e-9))), 3),
            "spearman": round(float(spearmanr(rep, true).statistic), 3),
        }
    out["confusion"] = confusion(found)
    out["verdict_held_out"] = verdict_held_out(found)
    by = {}
    for factor in ("case", "head", "light", "skin", "background", "jpeg", "size", "shadows"):
        levels = {}
        for r in rows:
            level = CASE_KINDS.get(r["id"][0], "invariance") if factor == "case" else str(r[factor])
            levels.setdefault(level, []).append(r)
        by[factor] = {
            level: {
                "n": len(group),
                "found": sum(1 for r in group if r.get("found")),
                "psnr_median": _median(group, "psnr_visible"),
                "misplacement_median": _median(group, "misplacement"),
            }
            for level, group in sorted(levels.items())
        }
    out["by_factor"] = by
    sources: dict[str, list[dict]] = {}
    for r in found:
        sources.setdefault(str(r.get("fov_source")), []).append(r)
    out["fov_error_by_source"] = {
        source: {"n": len(group), "median": _median(group, "fov_error")}
        for source, group in sorted(sources.items())
    }
    out["invariance"] = invariance
    return out


def _median(rows: list[dict], key: str):
    values = _finite([r for r in rows if r.get("found")], key)
    return round(float(np.median(values)), 3) if len(values) else None


def print_confusion(c: dict) -> None:
    """The confusion table: rows the truth, columns the verdict, and the flag rates."""
    print(
        f"\nconfusion (misplaced = true misplacement > {MISPLACED} IOD; "
        "found cases with a measured misplacement):"
    )
    if not c["has_verdict"]:
        print("  no verdict in report (no `quality` object in report.json): nothing is flagged")
    print(f"  {'':<12} {'good':>6} {'doubtful':>9} {'failed':>7}   flagged")
    for label, key, n in (("misplaced", "misplaced_by_verdict", "misplaced"), ("ok", "ok_by_verdict", "ok")):
        v = c[key]
        flagged = c[f"{n}_flagged"]
        rate = f"{flagged / c[n]:.0%}" if c[n] else "-"
        print(f"  {label:<12} {v['good']:>6} {v['doubtful']:>9} {v['failed']:>7}   {flagged}/{c[n]} ({rate})")
    print(f"  the ok cases are {c['ok_portraits']} distinct portraits (target: >= 90 % and <= 10 % flagged)")


def print_summary(s: dict) -> None:
    print(f"\n== {s['cases']} cases, face found in {s['found']} ({s['face_found_rate']:.0%})")
    print(f"{'measure':<20} {'median':>9} {'worst':>9} {'n':>4}   target (median / worst)")
    targets = {
        "psnr_visible": ">= 32 / >= 27 dB",
        "psnr_eyeballs": "the separate eyeballs' seen texels (e cases)",
        "fine_corr": ">= 0.7 median",
        "crease_corr": "|median| <= 0.1 (issue 10)",
        "shading_corr": "|median| <= 0.2 (issue 10)",
        "crease_floor": "the crease measure of the truth blurred 0.7 texel",
        "crease_sign": "~0: no crease shading kept or inverted",
        "fine_contrast": ">= 0.8 of the truth's (issue 10)",
        "misplacement": "<= 0.02 / <= 0.05 IOD",
        "fov_error": "<= 0.20 median",
        "seconds_register": "wall clock, first case of a head cold (0.4 s warm, issue 8)",
    }
    for key, v in s["stats"].items():
        med = "-" if v["median"] is None else f"{v['median']:.4f}"
        worst = "-" if v["worst"] is None else f"{v['worst']:.4f}"
        print(f"{key:<20} {med:>9} {worst:>9} {v['n']:>4}   {targets.get(key, '')}")
    if "report_vs_truth" in s:
        r = s["report_vs_truth"]
        print(
            "report's registration_error vs true misplacement: median ratio "
            f"{r['median_ratio_report_over_true']}, Spearman {r['spearman']}"
        )
    print_confusion(s["confusion"])
    held = s.get("verdict_held_out")
    if held:
        import verdict

        print(
            f"  held out (calibrated without the head's family, bench/verdict.py): {verdict.rate_line(held)}"
        )
        if held.get("vouched"):
            line = verdict.rate_line(held["vouched"])
            print(f"  the same where anything vouched (shading, outline, read landmarks): {line}")
    by_source = s.get("fov_error_by_source") or {}
    if by_source:
        cells = [f"{source}: {v['n']} cases, {v['median']}" for source, v in by_source.items()]
        print("field-of-view error by the report's fov_source (n, median): " + " | ".join(cells))
    print("\nby factor (n, found, median psnr, median misplacement):")
    for factor, levels in s["by_factor"].items():
        cells = [
            f"{level}: {v['n']}/{v['found']} {v['psnr_median']} {v['misplacement_median']}"
            for level, v in levels.items()
        ]
        print(f"  {factor:<10} " + " | ".join(cells))
    print(
        "\ninvariance: mean |texture(copy) - texture(original)| over the UV-covered texels, "
        "in /255 (target < 1)"
    )
    for item in s["invariance"]:
        print(f"  {item['head']:<8} {item['transform']:<12} {item['mean_abs_255']}")


# --- pictures -----------------------------------------------------------------------------------------


def _fit(image: np.ndarray, side: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    scale = side / max(h, w)
    small = cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    canvas = np.full((side, side, 3), 0.1, np.float32)
    y0, x0 = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
    canvas[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return canvas


def _dots(image: np.ndarray, xy: np.ndarray, colour, radius: int = 2) -> None:
    h, w = image.shape[:2]
    for x, y in np.asarray(xy):
        if np.isfinite(x) and np.isfinite(y):
            xi, yi = int(x), int(y)
            image[
                max(0, yi - radius) : min(h, yi + radius + 1), max(0, xi - radius) : min(w, xi + radius + 1)
            ] = colour


def contact_sheet(row: dict, extra: dict, path: Path, side: int = 384) -> None:
    """Portrait (true projections green, the registration's red, joined by a line of sight) | truth
    texture | produced texture (gain-corrected) | |difference| × 4 on the seen texels."""
    import cv2
    from avatartex.image_io import save_png
    from avatartex.metrics import gain_corrected

    portrait = extra["portrait"].copy()
    if "true_xy" in extra:
        for (x0, y0), (x1, y1) in zip(extra["true_xy"][::4], extra["fitted_xy"][::4], strict=False):
            if np.isfinite([x0, y0, x1, y1]).all():
                cv2.line(portrait, (int(x0), int(y0)), (int(x1), int(y1)), (1.0, 1.0, 0.0), 1)
        radius = max(1, portrait.shape[0] // 300)
        _dots(portrait, extra["true_xy"], (0.0, 1.0, 0.0), radius)
        _dots(portrait, extra["fitted_xy"], (1.0, 0.1, 0.1), radius)
    panels = [_fit(portrait, side), _fit(extra["truth"], side)]
    if "produced" in extra:
        visible = extra["visible"]
        produced = gain_corrected(extra["produced"], extra["truth"], visible)
        diff = np.zeros_like(produced)
        diff[visible] = np.clip(np.abs(produced - extra["truth"])[visible] * 4, 0, 1)
        shown = extra["truth"] * 0.25
        shown[visible] = diff[visible]
        panels += [_fit(produced, side), _fit(shown, side)]
    sheet = np.concatenate(panels, axis=1)
    label = (
        f"{row['id']} {row['head']} {row['transform']} yaw {row['yaw']} pitch {row['pitch']} "
        f"roll {row['roll']} fov {row['fov']} {row['light']}{' +shadow' if row['shadows'] else ''} "
        f"{row['skin']} {row['background']}"
    )
    figures = (
        f"psnr {row.get('psnr_visible')} fine {row.get('fine_corr')} misplc {row.get('misplacement')} "
        f"fov_fit {row.get('fov_fit')} reg_err {row.get('registration_error')} {row.get('error', '')}"
    )
    bar = np.full((44, sheet.shape[1], 3), 0.0, np.float32)
    cv2.putText(bar, label, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (1, 1, 1), 1, cv2.LINE_AA)
    cv2.putText(bar, figures, (6, 37), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (1, 1, 0.4), 1, cv2.LINE_AA)
    save_png(path, np.concatenate([bar, sheet], axis=0))


# --- main -----------------------------------------------------------------------------------------------


MADE_UP_SHARE = 3
"""Every this many of the random design's demo-family cases is run once more with the made-up skin
(``groundtruth.made_up_texture``: eyes, brows and lips painted where the sculpture has them)."""


def made_up_cases(cases: list[Case]) -> list[Case]:
    """Copies of every MADE_UP_SHARE-th demo-family case of the random design, same camera, light,
    background and sizes, with a painted face (``m`` for ``r`` in the id). The design's other skins
    carry no features, so the photo's face is read from the mesh's shading alone, as the mesh's own
    render is; a real face is read from its eyes, brows and lips, and these cases measure that."""
    demo = [c for c in cases if c.head.startswith("demo") and not c.group]
    return [replace(c, id="m" + c.id[1:], skin="made_up") for c in demo[::MADE_UP_SHARE]]


SOFT_SHARE = 3
"""Every this many of the random design's cases is run once more in a soft light (``s`` ids)."""


def soft_cases(cases: list[Case]) -> list[Case]:
    """Copies of every SOFT_SHARE-th case of the random design (every head), same camera, skin and
    sizes, in a soft light (``Case.soft``: ``s`` for ``r`` in the id): the design's lights are hard
    lights over an ambient that reaches into every crease, which no photo has; these measure what
    of the creases' own darkness (the head occluding the room's light) stays in the albedo."""
    return [replace(c, id="s" + c.id[1:], soft=True) for c in cases if not c.group][1::SOFT_SHARE]


TURNED_SHARE = 4
"""Every this many of the made-up cases is run once more with the photo turned (``t`` ids)."""
TURNS = (90.0, 180.0, -90.0)


def turned_cases(made_up: list[Case]) -> list[Case]:
    """Copies of every TURNED_SHARE-th made-up case with the portrait turned a quarter, a half or
    three quarters (the camera's roll, cycling through ``TURNS``; width and height swapped for the
    quarters): a phone photo whose orientation tag was lost (``t`` for ``m`` in the id)."""
    out = []
    for i, c in enumerate(made_up[::TURNED_SHARE]):
        turn = TURNS[i % len(TURNS)]
        width, height = (c.height, c.width) if abs(turn) == 90.0 else (c.width, c.height)
        out.append(replace(c, id="t" + c.id[1:], roll=c.roll + turn, width=width, height=height))
    return out


SHINY_SHARE = 4
"""Every this many of the made-up cases (from the second) is run once more with shiny skin (``h`` ids)."""
SHINE = 0.4
"""How strong the shiny cases' shine is (``groundtruth.render_portrait``): at the mirror direction
of a unit key light 0.4 of white added, linear (a forehead's or a nose's shine in a flash photo)."""


def shiny_cases(made_up: list[Case]) -> list[Case]:
    """Copies of every SHINY_SHARE-th made-up case (from the second) with the key lights' white
    shine on the skin (``h`` for ``m`` in the id): the albedo must not keep it (``shine.py``)."""
    return [replace(c, id="h" + c.id[1:], shine=SHINE) for c in made_up[1::SHINY_SHARE]]


TONE_SHARE = 3
"""Every this many of the random design's cases (from the third) and of the made-up cases is run once
more through a camera's tone curve (``c`` ids)."""


def tone_cases(cases: list[Case], made_up: list[Case]) -> list[Case]:
    """Copies of every TONE_SHARE-th case of the random design (from the third) and of the made-up
    cases, through a camera's filmic tone curve (``groundtruth.camera_response``; ``c`` for the id's
    first letter, ``cm`` for a made-up case's): the design's renders have a plain gamma, a photo a
    tone curve whose shoulder whitens the lit skin (``latent.whitened_skin``)."""
    plain = [c for c in cases if not c.group][2::TONE_SHARE]
    return [replace(c, id="c" + c.id[1:], tone="filmic") for c in plain] + [
        replace(c, id="cm" + c.id[1:], tone="filmic") for c in made_up[2::TONE_SHARE]
    ]


CASE_KINDS = {
    "r": "featureless skin",
    "m": "made-up, eyes one surface",
    "e": "made-up, separate eyeballs",
    "s": "soft light, occluded ambient",
    "t": "made-up, photo turned",
    "h": "made-up, shiny skin",
    "c": "camera tone curve",
}
"""The summary's split of the cases by their id's first letter (``i``: the invariance block)."""
EYEBALLS = "+eyeballs"
"""A head name's suffix: the demo-family head with its eyeballs also separate parts of the mesh
(``groundtruth.with_eyeballs``), as character meshes model them."""


def eyeball_cases(made_up: list[Case]) -> list[Case]:
    """The made-up cases again on heads whose eyeballs are separate parts (``e`` for ``m`` in the id):
    where the pipeline recognises the mesh's eyes (``eyes.py``); the plain demo heads' eyes are one
    surface with the lids and are read from their shading."""
    return [replace(c, id="e" + c.id[1:], head=c.head + EYEBALLS) for c in made_up]


def plan(
    quick: bool, have_scan: bool, seed: int, cases: int | None, invariance_only: bool = False
) -> list[Case]:
    """The cases of a run: an invariance block, a balanced random design, its made-up copies and those
    again on heads with separate eyeballs
    (``invariance_only``: the invariance block alone, to chase a texture that changes when the mesh
    is moved)."""
    if quick:
        heads = (["scan"] if have_scan else []) + ["demo", "demo-long_nose", "demo-big_eyes"]
        n = cases or 16
        out = invariance_cases("demo", ["yaw45", "scale100"], 512)
        if invariance_only:
            return out
        random = design(n, heads, seed, sizes=(512,))
        made_up = made_up_cases(random)
        extra = (
            soft_cases(random) + turned_cases(made_up) + shiny_cases(made_up) + tone_cases(random, made_up)
        )
        return out + random + made_up + eyeball_cases(made_up) + extra
    heads = (["scan"] if have_scan else []) + ["demo"] + [f"demo-{s}" for s in STYLIZED]
    transforms = [t for t in gt.TRANSFORMS if t != "none"]
    out = []
    if have_scan:
        out += invariance_cases("scan", transforms, 1024)
    out += invariance_cases("demo", transforms[:3] + ["scale0.01"], 1024)
    if not invariance_only:
        random = design(cases or 96, heads, seed)
        made_up = made_up_cases(random)
        extra = (
            soft_cases(random) + turned_cases(made_up) + shiny_cases(made_up) + tone_cases(random, made_up)
        )
        out += random + made_up + eyeball_cases(made_up) + extra
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small subset (~1.5 min) for development")
    parser.add_argument("--cases", type=int, default=None, help="random-design cases (default 96, quick 16)")
    parser.add_argument(
        "--invariance", action="store_true", help="only the moved copies of the scan and the demo head"
    )
    parser.add_argument("--only", default=None, help="run only these case ids (comma-separated: r087,m026)")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--work", default="out/sweep", help="folder for portraits, meshes and textures")
    parser.add_argument("--json", default=None, help="write every row and the summary to this file")
    parser.add_argument("--pictures", default=None, help="write contact sheets of the worst cases here")
    parser.add_argument("--scan", default=str(gt.SHARED_SCAN))
    parser.add_argument(
        "--paint-eyes",
        action="store_true",
        help="an oracle: the demo family's eyeballs painted where the registration reads the mesh",
    )
    parser.add_argument(
        "--registration-only",
        action="store_true",
        help="stop each request after the registration: misplacement and fov alone, about 4x faster",
    )
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    scan = gt.load_scan(Path(args.scan))
    cases = plan(args.quick, scan is not None, args.seed, args.cases, args.invariance)
    if args.only:
        wanted = set(args.only.split(","))
        cases = [case for case in cases if case.id in wanted]
    sweep = Sweep(work, scan, 96, 72)
    sweep.tap.stop_after = args.registration_only
    print(f"{len(cases)} cases; registration tap: {sweep.tap.where}", flush=True)
    print_header()
    rows: list[dict] = []
    extras: dict[str, dict] = {}
    references: dict[str, np.ndarray] = {}
    invariance: list[dict] = []
    painter = mesh_reading.EyePainter() if args.paint_eyes else contextlib.nullcontext()
    for case in cases:
        if args.paint_eyes:
            painter.head = sweep.head(case.head)
        with painter:
            row, extra = sweep.run(case)
        rows.append(row)
        print_row(row)
        if case.group and "produced" in extra:
            if case.transform == "none":
                references[case.group] = extra["produced"]
            elif case.group in references:
                mask = extra["surface"].mask
                diff = float(np.abs(extra["produced"] - references[case.group])[mask].mean() * 255)
                invariance.append(
                    {"head": case.head, "transform": case.transform, "mean_abs_255": round(diff, 2)}
                )
        elif case.group and case.transform != "none" and not args.registration_only:
            invariance.append({"head": case.head, "transform": case.transform, "mean_abs_255": row["error"]})
        if args.pictures:  # keep the images of the cases worth a picture only
            extras[case.id] = extra
            keep = set(_worst_ids(rows, 6))
            for key in list(extras):
                if key not in keep:
                    del extras[key]
    s = summary(rows, invariance)
    s["seconds"] = round(time.perf_counter() - started, 1)
    s["command"] = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    print_summary(s)
    print(f"\n{s['seconds']} s in all")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"summary": s, "rows": rows}, indent=1, default=str))
    if args.pictures:
        folder = Path(args.pictures)
        folder.mkdir(parents=True, exist_ok=True)
        by_id = {r["id"]: r for r in rows}
        for rank, case_id in enumerate(_worst_ids(rows, 6)):
            contact_sheet(by_id[case_id], extras[case_id], folder / f"worst{rank:02d}_{case_id}.png")
        print(f"contact sheets in {folder}")
    return 0


def _worst_ids(rows: list[dict], n: int) -> list[str]:
    """The worst cases: not found first, then by true misplacement, then by psnr; n of each kind."""
    missing = [r["id"] for r in rows if not r.get("found")][: n // 2]
    misplaced = sorted(
        (r for r in rows if r.get("misplacement") is not None), key=lambda r: -r["misplacement"]
    )[:n]
    low = sorted((r for r in rows if r.get("psnr_visible") is not None), key=lambda r: r["psnr_visible"])[
        : n // 2
    ]
    out = []
    for case_id in missing + [r["id"] for r in misplaced] + [r["id"] for r in low]:
        if case_id not in out:
            out.append(case_id)
    return out


if __name__ == "__main__":
    sys.exit(main())
