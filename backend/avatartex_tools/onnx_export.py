"""ONNX export of a prior's synthesis network, and an onnxruntime runner for forward-only use.

The export needs the ``onnx`` package (torch's exporter imports it), and installing ``onnx`` next to
mediapipe 0.10.14 breaks mediapipe's protobuf. So the export is a separate command meant for a
separate small environment (torch + onnx; see ``backend/requirements-neural.txt``):

    avatartex-tools export-onnx --prior PRIOR.safetensors --out synthesis.onnx

The backend itself only *runs* the exported file with onnxruntime(-gpu), which does not need ``onnx``.
Latent optimisation needs gradients and stays in torch; onnxruntime serves forward-only uses
(sampling previews, re-synthesising a saved W+ latent at full resolution) where it is faster to load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from avatartex.protocol import AvatarTexError, ErrorCode


def export_synthesis(prior_path: str | Path, out_path: str | Path, opset: int = 17) -> Path:
    """Export W+ (N, num_ws, w_dim) -> image (N, 3, R, R) with constant noise to ``out_path``."""
    import torch

    try:
        import onnx  # noqa: F401
    except ImportError:
        raise AvatarTexError(
            ErrorCode.ENGINE_UNAVAILABLE,
            "Exporting to ONNX needs the onnx package, which is "
            "not installed here (it conflicts with mediapipe in the backend's environment).",
            "Create a separate environment with torch and onnx, install this package there and run "
            "`avatartex-tools export-onnx ...`.",
        ) from None
    from avatartex.engines.neural.prior import load_prior

    generator = load_prior(prior_path)

    class Synthesis(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.synthesis = generator.synthesis

        def forward(self, ws: torch.Tensor) -> torch.Tensor:
            return self.synthesis(ws, noise_mode="const")

    ws = generator.mapping.w_avg[None, None].repeat(1, generator.config.num_ws, 1)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        Synthesis().eval(),
        (ws,),
        str(out_path),
        input_names=["ws"],
        output_names=["image"],
        dynamic_axes={"ws": {0: "batch"}, "image": {0: "batch"}},
        opset_version=opset,
        dynamo=False,
    )
    return out_path


class OnnxSynthesis:
    """Run an exported synthesis network with onnxruntime (CUDA provider first where present)."""

    def __init__(self, path: str | Path) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise AvatarTexError(
                ErrorCode.ENGINE_UNAVAILABLE,
                "onnxruntime is not installed.",
                "pip install onnxruntime-gpu (NVIDIA) or onnxruntime.",
            ) from None
        providers = [
            p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()
        ]
        self.session = ort.InferenceSession(str(path), providers=providers)

    def __call__(self, ws: np.ndarray) -> np.ndarray:
        """(N, num_ws, w_dim) float32 -> (N, R, R, 3) float32 in 0..1."""
        (image,) = self.session.run(["image"], {"ws": np.ascontiguousarray(ws, dtype=np.float32)})
        return ((np.clip(image, -1, 1) + 1) / 2).transpose(0, 2, 3, 1).astype(np.float32)

    @property
    def providers(self) -> list[Any]:
        """The execution providers in use."""
        return self.session.get_providers()
