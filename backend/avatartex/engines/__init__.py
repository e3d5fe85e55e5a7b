"""The two engines behind one stage interface (``base.Stage``), and the choice between them.

``classic/`` runs on any CPU with nothing to download; ``neural/`` needs torch, diffusers and
downloaded weights, and a GPU to be interactive. ``choose`` decides per stage and says why, which is
what ``report.json`` shows under ``stages``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..protocol import ENGINES, AvatarTexError, ErrorCode
from .base import Stage


@dataclass
class StagePlan:
    """The stages a request runs, each with the reason its engine was chosen."""

    engine: str
    """``classic`` or ``neural``: what the request was served with (stage 2 may still be classic)."""
    stages: list[Stage]
    reasons: dict[str, str]
    """Stage name -> why this engine runs it, in the artist's words."""
    warnings: list[str] = field(default_factory=list)

    passed: dict[str, str] = field(default_factory=dict)
    """Stage name -> why it passed the texture on unchanged, once run (``StageContext.passed``)."""

    def report(self) -> dict[str, dict[str, Any]]:
        """``{"inpaint": {"engine": "neural", "reason": "..."}, ...}`` for report.json; a stage that
        passed the texture on unchanged (``passed``) has ``"ran": false`` and says why."""
        out: dict[str, dict[str, Any]] = {}
        for stage in self.stages:
            reason = self.reasons[stage.name]
            out[stage.name] = {"engine": stage.engine, "reason": reason}
            if stage.name in self.passed:
                out[stage.name].update(ran=False, reason=f"{reason}; {self.passed[stage.name]}")
        return out


def classic_stages() -> list[Stage]:
    """The classic engine's three stages."""
    from .classic.inpaint import ClassicInpaint
    from .classic.latent import ClassicLatent
    from .classic.repaint import ClassicRepaint

    return [ClassicInpaint(), ClassicLatent(), ClassicRepaint()]


def _auto_classic(why: str) -> StagePlan:
    """``auto``'s classic plan, each stage saying ``why``."""
    stages = classic_stages()
    reason = f"auto chose classic: {why}"
    return StagePlan("classic", stages, {s.name: reason for s in stages}, [f"engine {reason}"])


def choose(requested: str, style: Any, neural_config: Any = None) -> StagePlan:
    """The stages for ``requested`` (``auto``, ``classic`` or ``neural``).

    ``auto`` takes the neural engine where torch sees a GPU and the default weights are cached, the
    classic one otherwise (a device set to ``cpu`` included: minutes per texture, which only
    ``neural`` asks for); ``neural`` runs wherever the configured device is (an explicit ``cpu``
    included, with a warning), and fails with the missing model's name and the download command
    when its weights are not cached."""
    if requested not in ENGINES:
        raise AvatarTexError(
            ErrorCode.UNKNOWN_ENGINE, f"Unknown engine {requested!r}.", "Use auto, classic or neural."
        )
    if requested == "classic":
        stages = classic_stages()
        return StagePlan("classic", stages, {s.name: "classic engine requested" for s in stages})
    from . import neural

    config = neural_config or neural.NeuralConfig.from_env()
    found = neural.status(config)
    if not found.ok:
        if requested == "neural":
            if found.missing_models:
                names = " ".join(found.missing_models)
                raise AvatarTexError(
                    ErrorCode.MODEL_MISSING,
                    f"The neural engine's model(s) {', '.join(found.missing_models)} are not downloaded.",
                    f"Run `avatartex models download {names}` once with a network, "
                    "or use the classic engine.",
                )
            raise AvatarTexError(
                ErrorCode.ENGINE_UNAVAILABLE,
                f"The neural engine cannot run: {found.reason}.",
                f"{found.hint} Or use the classic engine."
                if found.hint
                else "Use the classic engine, or set the device (AVATARTEX_DEVICE / --device), or install "
                "the neural requirements.",
            )
        return _auto_classic(found.reason)
    if requested == "auto" and found.device == "cpu":
        # The add-on's advice where there is no GPU is to set the device to CPU; with the models
        # there, auto then ran every texture and batch on the neural engine on the processor.
        return _auto_classic(
            "the device is the CPU, where the neural engine takes minutes per texture; choose the neural "
            "engine to run it there anyway"
        )
    warnings = []
    if found.device == "cpu":
        warnings.append("the neural engine runs on the CPU as asked: expect minutes per texture")
    planned = neural.build_stages(style, config)
    stages = [stage for stage, _ in planned]
    reasons = {
        stage.name: f"{reason} on {found.device}" if stage.engine == "neural" else reason
        for stage, reason in planned
    }
    return StagePlan("neural", stages, reasons, warnings)
