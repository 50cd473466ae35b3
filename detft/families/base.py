"""What a model family provides. Everything that differs between families (how a network is built,
trained, frozen, augmented, loaded for prediction) lives behind this protocol, so nothing outside
``families/`` asks which family a run is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..engine.tracking import NO_TRACKING

if TYPE_CHECKING:
    from pathlib import Path

    from ..config import TrainConfig
    from ..data.loading import TrainingData
    from ..engine.tracking import Tracker
    from ..export.metadata import Graph
    from ..inference.predictor import Predictor
    from ..runs import Run, RunInfo


class Family(Protocol):
    name: str  # the key saved in run.yaml
    summary: str  # one line for --help and errors
    int8: bool  # whether detft export --int8 quantizes its graphs (measured where it is offered: export/quantize.py)

    def handles(self, arch: str) -> bool:
        """Whether ``--arch`` names this family (or one of its models)."""

    def check_model(self, arch: str, model: str | None) -> None:
        """Raise a DetftError now when ``--arch``/``--model`` name nothing this family builds, so a typo fails
        before hours of training (the benchmark checks every candidate first)."""

    def train(self, config: TrainConfig, run: Run, resume: bool = False, trust_weights: bool = False,
              tracker: Tracker = NO_TRACKING) -> Run:
        """Train into ``run`` (its folder may not exist yet); with ``resume``, continue its last.pt.
        ``trust_weights`` lifts the restricted checkpoint loader for this call only. ``tracker`` is started once
        run.yaml is written and gets every epoch's metrics.csv row as the epoch ends (main process only)."""

    def auto_freeze(self, config: TrainConfig, data: TrainingData) -> tuple[str, str | None]:
        """What ``--freeze auto`` chooses for ``config``'s start on ``data``, before anything trains, and the line
        saying why (the benchmark shows it beside the policies it compares)."""

    def predictor(self, run: Run, *, device: str = "auto", conf: float = 0.25, max_dets: int = 100,
                  imgsz: int | None = None, trust_weights: bool = False) -> Predictor:
        """The run's chosen checkpoint behind the common Predictor interface."""

    def export(self, run: Run, path: Path, *, imgsz: int | None, dynamic: bool | None, half: bool, opset: int | None,
               max_dets: int, trust_weights: bool = False) -> tuple[RunInfo, Graph]:
        """Write the run's chosen checkpoint to ``path`` as an ONNX graph; return the run's metadata as the
        graph has it (its input size) and how a predictor drives the graph. ``dynamic`` None: the family's
        default, the input shapes that predict what the checkpoint predicts. Refuse options the family's graph
        cannot honour with a DetftError that says why."""
