"""detft: fine-tune pretrained detection and instance-segmentation models on your own labelled images.

    import detft
    run = detft.train(data="my_export/", arch="yolo", epochs=30)
    model = detft.load(run)
    detections = model.predict("photo.jpg")
    result = detft.benchmark(data="my_export/", budget="20m")  # several pretrained starts, ranked"""

import os

# albumentations 2.x asks PyPI for its latest version on import; detft never touches the network at run time
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from .api import Model, compare_runs, list_runs, load, train  # noqa: E402
from .benchmark import benchmark  # noqa: E402
from .config import TrainConfig  # noqa: E402
from .annotations.dataset import Annotation, Category, Dataset, ImageRecord, SourceRef  # noqa: E402
from .errors import DetftError, FormatError  # noqa: E402
from .annotations.report import Report  # noqa: E402
from .runs import Run  # noqa: E402
from .version import __version__  # noqa: E402

__all__ = ["Annotation", "Category", "Dataset", "DetftError", "FormatError", "ImageRecord", "Model", "Report", "Run",
           "SourceRef", "TrainConfig", "__version__", "benchmark", "compare_runs", "list_runs", "load", "train"]
