"""One ``generate`` request, from a portrait and a head mesh to the texture in the mesh's UVs.

``Generator`` keeps what is worth keeping between requests in one backend process: the face
landmarker, the person segmenter, the neural engine's settings, and per mesh its landmarks, head
frame, atlases and UV surfaces (``cache.HeadCache``; the landmarks optionally on disk too,
``cache.HeadStore``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import body, engines, memo, separate_body, uvtiles
from ..engines.base import StageContext
from ..face import Face, person_mask
from ..features import drawn_lines, feature_lines
from ..image_io import save_png
from ..mesh import Mesh, load_mesh, save_mesh, with_pins
from ..photoface import photo_face_normals
from ..protocol import AvatarTexError, ErrorCode, GenerateParams, PrepareParams, Progress
from ..quality import assess, behind_by, with_coverage
from ..regions import complete_regions, photo_mouth_open
from ..registration import Registration
from ..styles import get_style
from . import steps
from .cache import FitCache, HeadCache, HeadModel, HeadStore, PortraitFit, mesh_key
from .progress import RequestClock
from .report import build_report, check_writable, write_debug, write_json_atomic

MIN_SIZE, MAX_SIZE = 512, 4096


def atlas_size_for(texture_size: int) -> int:
    """The atlas edge for an output size: the bake adds the portrait's finest detail itself, so the
    atlas stops at 1024 and the stages keep their cost whatever the output size."""
    return 512 if texture_size <= 512 else 1024


def check_size(size: int) -> None:
    """A typed error for a texture size the pipeline does not make."""
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise AvatarTexError(
            ErrorCode.INVALID_SIZE,
            f"Texture size {size} is out of range.",
            f"Use {MIN_SIZE} to {MAX_SIZE} pixels (1024 or 2048 are typical).",
        )


def check_params(params: GenerateParams) -> None:
    """Typed errors for requests that cannot be served, before any work."""
    check_size(params.size)
    if params.bit_depth not in (8, 16):
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST, f"Bit depth {params.bit_depth} is not supported.", "Use 8 or 16."
        )


class Generator:
    """Runs ``generate`` requests; one per backend process, reused across requests."""

    def __init__(
        self,
        landmarker: Any = None,
        cache_size: int = 4,
        neural_config: Any = None,
        head_store: HeadStore | None = None,
    ) -> None:
        self._landmarker = landmarker
        self._segmenter = None
        self.heads = HeadCache(cache_size, head_store)
        """Per mesh: landmarks, frame, atlases, UV surfaces; the landmarks also in ``head_store``
        (a folder kept across processes) when one is given."""
        self.fits = FitCache()
        """Per head and portrait: the registration and projection (variants of one photo)."""
        self.memo = memo.Memo()
        """Results kept by the content of their inputs, for the variants of one photo (``memo``)."""
        self.neural_config = neural_config
        """Settings of the neural engine; None reads them from the environment on first use."""

    @property
    def landmarker(self) -> Any:
        """The portrait and mesh-render face detector (mediapipe), created on first use."""
        if self._landmarker is None:
            from ..face import default_landmarker

            self._landmarker = default_landmarker()
        return self._landmarker

    @property
    def segmenter(self) -> Any:
        """Person-versus-background segmentation of portraits, created on first use."""
        if self._segmenter is None:  # the process's one: the outline fallback uses it too
            from ..face import default_segmenter

            self._segmenter = default_segmenter()
        return self._segmenter

    def head(self, mesh: Mesh, facing: str = "") -> HeadModel:
        """The mesh's landmarks, head frame and caches (computed once per mesh content)."""
        return self.heads.head(mesh, self.landmarker, facing)

    def prepare(
        self, params: PrepareParams, check_cancel: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        """Compute and keep what a ``generate`` on this mesh needs from the mesh alone: its landmarks
        and head frame (the costly part on a head never seen: the landmark search), the atlas and
        the UV surface of ``params.size``. Returns what was found (``PrepareParams`` says the
        fields); raises the same typed errors a ``generate`` would (``no_face_on_mesh``...) and
        ``Cancelled`` between detector views."""
        clock = RequestClock(None, check_cancel)
        check_size(params.size)
        clock.check_cancel()
        mesh = with_pins(load_mesh(params.mesh, params.uv_map, params.unwrap), params.pins)
        known = mesh_key(mesh, params.facing) in self.heads
        head = self.heads.head(mesh, self.landmarker, params.facing, clock.check_cancel)
        head.painted_landmarks(self.landmarker)  # its eyeballs read painted (eyes.py), when it has them
        clock.done("analyse")
        clock.check_cancel()
        steps.prepare_head_tables(head, atlas_size_for(params.size), params.size)
        clock.done("bake")
        return {
            "ready": True,
            "mesh": mesh.name,
            "known": known,
            "landmarks": head.landmarks.source,
            "facing": head.landmarks.facing,
            "body": head.body is not None,
            "eyeballs": head.eyeballs() is not None,
            "size": params.size,
            "warnings": list(mesh.warnings) + list(head.landmarks.warnings),
            "timings": {"landmarks": clock.timings["analyse"], "atlas": clock.timings["bake"]},
        }

    def register(
        self,
        head: HeadModel,
        face: Face,
        portrait: np.ndarray,
        fov_y_deg_exif: float | None = None,
        person: np.ndarray | None = None,
        scatter: float | None = None,
    ) -> Registration:
        """The portrait's camera and warp for ``head`` (``steps.register_portrait``); benchmarks
        replace it on an instance to feed a known camera."""
        return steps.register_portrait(head, face, portrait, self.landmarker, fov_y_deg_exif, person, scatter)

    def engines(self) -> dict[str, dict[str, Any]]:
        """Which engines can run here and why not, for ``hello``."""
        from ..engines import neural

        found = neural.status(self.neural_config or neural.NeuralConfig.from_env())
        return {
            "classic": {"available": True, "reason": "runs on any CPU, nothing to download"},
            "neural": {"available": found.ok, "reason": found.reason, "device": found.device},
        }

    def generate(
        self,
        params: GenerateParams,
        progress: Callable[[Progress], None] | None = None,
        check_cancel: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Run one request; returns ``{"texture": path, "report": {...}}``, and ``"tiles": {UDIM:
        path}`` when the head's UVs lie in several UDIM tiles (``texture`` is then the first's).

        Nothing is written to ``out_dir`` until the texture is complete, and then only through
        temporary files and renames: a failure or cancel leaves the folder as it was.
        """
        clock = RequestClock(progress, check_cancel)
        check_params(params)
        params = body.prepare(params)  # tone_match checked; a base texture's size and depth
        separate = separate_body.load(params)  # a body of its own, read before the work (typed errors)
        style = get_style(params.style)
        plan = engines.choose(params.engine, style, self.neural_config)
        out_dir = Path(params.out_dir)
        check_writable(out_dir)

        analysis = steps.analyse(
            params, self.landmarker, self.heads, lambda f, m: clock.step("analyse", f, m), self.segmenter
        )
        warnings = plan.warnings + analysis.warnings
        files = steps.texture_files(analysis.head, params)  # one image per UV tile the head lies in
        material = steps.textured_material(analysis.head, warnings)  # the face's, of several
        clock.done("analyse")

        clock.step("register", 0.0, "fitting the camera")
        atlas_size = atlas_size_for(params.size)
        fit_key = FitCache.key(
            analysis.head,
            analysis.portrait,  # the corrected photo: the projection kept with the fit reads it
            analysis.face.landmarks,
            analysis.fov_y_deg_exif,
            atlas_size,
            self.register,
        )
        fit = self.fits.get(fit_key, analysis.head)  # a variant of a photo fitted before
        if fit is not None:
            registration, scatter, face = fit.registration, fit.landmark_scatter, fit.face
        else:
            steady = steps.steady_portrait(self.landmarker, analysis, params.portrait, self.segmenter)
            face, scatter = steady.face, steady.scatter
            warnings += steady.warnings
            person = steady.person  # segmented once: the registration and the projection read it
            if person is None:
                person = person_mask(self.segmenter, analysis.for_registration, face)
            analysis = dataclasses.replace(analysis, person=person)
            registration = self.register(
                analysis.head, face, analysis.for_registration, analysis.fov_y_deg_exif, person, scatter
            )
        analysis = dataclasses.replace(analysis, face=face)  # the steadied landmarks from here on
        quality = assess(
            registration,
            analysis.head.frame,
            analysis.face.score,
            analysis.head.landmarks.score,
            analysis.head.landmarks.source,
            analysis.face.extras.get("pass"),
            scatter,
            analysis.head.landmarks.held,
            photo_mouth_open(analysis.face),
        )
        said_at = len(warnings)  # where the verdict is said, once the projection has had its word
        clock.done("register")

        clock.step("project", 0.0, "projecting the portrait")
        geometry = analysis.head.atlas(atlas_size)
        if fit is not None:
            person, projection = fit.person, fit.projection
        else:
            person = analysis.person
            projection = steps.project(
                geometry, analysis.head, analysis.portrait, analysis.face, registration, person
            )
            self.fits.put(
                fit_key, analysis.head, PortraitFit(registration, person, projection, scatter, face)
            )
        if projection.portrait is not None:  # the photo the colour was read from (lens tint out)
            analysis = dataclasses.replace(analysis, portrait=projection.portrait)
        if projection.coverage < 0.5:
            # Behind the face the camera sees the back of the head: nothing of the photo is in front of
            # it, the fit is wrong (the verdict's first reason says so).
            why = (
                "the camera was fitted behind the mesh's face: see the registration's reasons"
                if behind_by(quality.signals) is not None
                else "hair, hands or glasses in front of it?"
            )
            warnings.append(
                f"only {projection.coverage:.0%} of the face the camera sees is usable ({why}): a clear "
                "frontal photo gives a more faithful texture"
            )
        quality = with_coverage(quality, projection.coverage)
        if quality.verdict != "good":
            warnings.insert(said_at, f"registration {quality.verdict}: " + "; ".join(quality.reasons))
        clock.done("project")

        # The scalp (skin or the photo's hair), the eyes and the mouth, before the stages fill the rest.
        clock.step("project", 1.0, "scalp, eyes and mouth")
        eyeballs = analysis.head.eyeballs()  # separate parts of the mesh: eyes, not skin
        scalp = params.scalp or style.scalp
        # A variant of a photo fitted before gets the regions it got then: they read the fit (whose
        # key names the head), the scalp and (for the hair's strands only) the seed.
        regions_key = memo.digest(fit_key, scalp, params.seed if scalp == "hair" else None)
        regions = self.memo.get("regions", regions_key) if fit is not None else None
        if regions is None:
            regions = complete_regions(
                projection.partial,
                geometry,
                analysis.head.landmarks.points3d,
                analysis.portrait,
                analysis.face,
                person,
                registration,
                projection.portrait_coords,
                scalp,
                params.seed,
                projection.glasses,
                eyeballs,
            )
            self.memo.put("regions", regions_key, regions)
        warnings += regions.warnings
        clock.done("regions")

        ctx = StageContext(
            atlas=geometry,
            portrait=analysis.portrait,
            portrait_coords=regions.portrait_coords,
            photo_share=regions.photo_confidence,
            marks=regions.marks,
            style=style,
            seed=params.seed,
            strength=params.strength,
            prompt=params.prompt,
            check_cancel=clock.check_cancel,
            warnings=warnings,
            alignment_error_iod=float(quality.estimated_error_iod),
            subject=params.subject,
            view_from=analysis.head.frame.to_head(registration.camera.center),
            memo=self.memo,
        )
        photo, head_axes = analysis.face, analysis.head.frame.axes
        ctx.photo_face = lambda: photo_face_normals(
            photo.landmarks,
            photo.depth,
            photo.interocular,
            regions.portrait_coords,
            registration.camera,
            head_axes,
        )
        ctx.feature_source = lambda: feature_lines(
            geometry, analysis.face.landmarks, projection.portrait_coords, analysis.head.landmarks.points3d
        )
        # The head's own lines (its jaw moved onto its outline) only where a style draws them.
        ctx.drawn_source = lambda photo_lines: drawn_lines(
            geometry, photo_lines, analysis.head.drawn_landmarks()
        )
        # The hair (scalp=hair) and separate eyeballs go over the completed, de-lit skin, before the
        # style's repaint.
        split = next((i for i, stage in enumerate(plan.stages) if stage.name == "repaint"), len(plan.stages))
        atlas_texture = steps.run_stages(plan.stages[:split], regions.texture, ctx, clock)
        said = steps.implausible_skin(geometry, atlas_texture.color) or steps.unchecked_warmth(
            geometry, atlas_texture.color, analysis.white_balance
        )
        if said:
            warnings.append(said)
        eye_colours = regions.eye_colours(atlas_texture, ctx.delight)
        if regions.eye_layer is not None and eye_colours is not None:  # what the separate eyeballs got
            regions.summary["eyeball_sclera_rgb"] = [round(float(v), 3) for v in eye_colours.sclera]
            regions.summary["eyeball_iris_rgb"] = [round(float(v), 3) for v in eye_colours.iris]
        atlas_texture = regions.paint_layers(atlas_texture, eye_colours)
        ctx.hair = regions.hair_cover(geometry.size)
        ctx.lenses_source = lambda: steps.lenses_in_atlas(projection, regions.portrait_coords)
        clock.done("regions")
        atlas_texture = steps.run_stages(plan.stages[split:], atlas_texture, ctx, clock)
        plan.passed.update(ctx.passed)

        clock.step("bake", 0.0, "baking into the UV map")
        weight = steps.detail_weight(style, plan.engine, params.strength)
        head = analysis.head
        seen = steps.seen_by_photo(projection.partial.confidence, regions.photo_confidence)

        def bake_step(start: float, end: float, message: str):
            """Progress (and a cancel point) within the bake, from ``start`` to ``end`` of it: its
            parts run for tens of seconds on a first 4096² request or a mesh of millions of faces."""

            def step(fraction: float, note: str = "") -> None:
                clock.step("bake", start + (end - start) * fraction, note or message)

            return step

        surfaces = []
        for index, (tile, _) in enumerate(files):
            bake_step(0.0, 0.2, "the UV map's texels")(index / len(files))
            surfaces.append(steps.prefer_seen(head, params.size, tile, geometry, seen, warnings))

        def detail(surface):
            """The portrait's finest detail for one tile's surface, as far as the style takes it."""
            if weight <= 0:
                return None
            coords, confidence = regions.portrait_coords, regions.photo_confidence
            found = steps.portrait_detail(
                surface, analysis.portrait, geometry, analysis.face, coords, confidence
            )
            if weight != 1.0:  # photoreal takes all of it: no pass over 4096²'s 15 M texels for nothing
                found *= np.float32(weight)
            return found

        def own_photo(surface):
            """The photo on what the atlas cannot hold (a bust's neck and chest), as far as the style
            keeps the photo's detail: a stylised atlas must not meet the raw photo there."""
            if weight <= 0:
                return None
            found = steps.photo_outside_atlas(
                surface,
                geometry,
                analysis.portrait,
                analysis.face,
                registration,
                projection,
                regions.photo_confidence,
                ctx.delight_at,
                self.memo,
            )
            if found is not None and weight < 1.0:
                found.confidence *= np.float32(weight)
            return found

        details, photos, painted = [], [], []
        for index, surface in enumerate(surfaces):
            share = index / len(surfaces)
            bake_step(0.2, 0.3, "the photo's own detail")(share)
            details.append(detail(surface))
            bake_step(0.3, 0.5, "the photo beyond the head's atlas (neck, chest)")(share)
            photos.append(own_photo(surface))
            painted.append(
                steps.painted_last(
                    steps.eyes_on_surface(surface, eyeballs, eye_colours),
                    steps.mouth_on_surface(geometry, surface, head),
                )
            )
        baked, final_atlas = steps.bake_texture(
            geometry,
            atlas_texture.color,
            surfaces,
            details,
            photos,
            ctx.style_shadow,
            painted,
            bake_step(0.5, 0.95, "baking into the UV map"),
        )
        textures, body_report = [], None
        for (tile, _name), texture in zip(files, baked, strict=True):
            # A full-body character: the head texture on its head only, the body kept from the base
            # texture (tone-matched) or skin-filled (body.py).
            texture, tile_report = body.compose(head.body, texture, params, warnings, tile, head.material)
            body_report = body_report or tile_report
            textures.append(texture)
            clock.check_cancel()
        toned_body = None
        if separate is not None:  # a body of its own (a separate object): the skin matched across the neck
            if head.body is not None or len(files) > 1:
                why = "the mesh is a full-body character itself" if head.body else "the head spans UV tiles"
                warnings.append(f"body_mesh not used: {why}")
            else:
                textures[0], toned_body, body_report = separate_body.match(
                    head.mesh,
                    head.textured,
                    head.from_file,
                    head.frame.scale,
                    textures[0],
                    separate,
                    params,
                    warnings,
                )
        elif (in_material := steps.body_in_material(head, params, warnings, len(files) == 1)) is not None:
            # The body in a material of its own (Daz's Face and Torso): matched as a separate body.
            if len(files) > 1:
                warnings.append(
                    f"material_textures not used: the body's material '{in_material[1]['material']}' "
                    "was not matched to the face, whose material spans UV tiles (the matching reads one); "
                    "match the neck's skin by hand"
                )
            else:
                body_part, source, toning = in_material
                textures[0], toned_body, matched = separate_body.match(
                    head.mesh,
                    head.textured,
                    lambda points: points,
                    head.frame.scale,
                    textures[0],
                    body_part,
                    toning,
                    warnings,
                    source,
                )
                body_report = (body_report or {}) | matched  # a full-body mesh's own report kept
        paths = [out_dir / name for _tile, name in files]
        for path, texture in zip(paths, textures, strict=True):
            save_png(path, texture, params.bit_depth)
        if toned_body is not None:
            body_path = out_dir / separate_body.body_texture_name(params)
            save_png(body_path, toned_body, 16 if toned_body.dtype == np.uint16 else 8)
            body_report["written"] = str(body_path)
        texture_path = paths[0]
        clock.done("bake")
        clock.timings["total"] = clock.total()

        enlarged, note = steps.enlargement_note(head, params.size, analysis.face.interocular)
        if note:
            warnings.append(note)
        report = build_report(
            params,
            plan,
            style.name,
            geometry.size,
            analysis,
            registration,
            projection,
            quality,
            clock.timings,
            warnings,
        )
        report["regions"] = regions.summary  # the scalp applied, the hair and eye colours measured
        # texels between the eyes in the texture per pixel between them in the photo
        report["portrait"]["texture_enlargement"] = None if enlarged is None else round(enlarged, 2)
        if ctx.lighting:
            report["lighting"] = dict(ctx.lighting)
        if projection.lens_tint is not None and projection.lens_tint.shift_ab is not None:
            # CIELAB (a*, b*) taken out of the skin behind the glasses' lenses
            report["regions"]["lens_tint_ab"] = list(projection.lens_tint.shift_ab)
        if material is not None:
            report["material"] = material
        if uvtiles.UDIM_TOKEN in params.base_texture:  # the body's tiles the head leaves as they are
            base, ours = uvtiles.tile_files(params.base_texture), dict(files)
            report["base_tiles"] = {str(uvtiles.udim(t)): str(p) for t, p in base.items() if t not in ours}
            toned = body_report is not None and body_report.get("toned_body_texels", 0) > 0
            if toned and report["base_tiles"]:
                warnings.append(
                    f"the body's skin was matched to the face's in tile(s) "
                    f"{', '.join(str(uvtiles.udim(t)) for t, _ in files)} only; tile(s) "
                    f"{', '.join(report['base_tiles'])} keep the base's tone. tone_match face_to_body "
                    "matches the face to the body instead, alike in every tile"
                )
        report["uv_tiles"] = [
            {"tile": uvtiles.udim(tile), "square": list(tile), "texture": name} for tile, name in files
        ]
        if body_report is not None:
            report["body"] = body_report
        if params.debug:
            report["debug"] = write_debug(out_dir, projection, final_atlas, analysis, registration)
        # The texture fits only the UV map --unwrap made: that mesh is saved beside it (atomically,
        # only now that all succeeded).
        if analysis.mesh.unwrapped:
            report["unwrapped_mesh"] = str(save_mesh(analysis.mesh, out_dir / "mesh.glb"))
        write_json_atomic(out_dir / "report.json", report)
        clock.emit(Progress("bake", 1.0, "done"))
        result = {"texture": str(texture_path), "report": report}
        if body_report is not None and body_report.get("written"):
            result["body_texture"] = body_report["written"]
        if "base_tiles" in report:
            result["base_tiles"] = report["base_tiles"]
        if len(files) > 1 or uvtiles.UDIM_TOKEN in params.base_texture:
            tiles = [str(uvtiles.udim(tile)) for tile, _ in files]
            result["tiles"] = dict(zip(tiles, map(str, paths), strict=True))
        return result
