"""detft: fine-tune pretrained detection and instance-segmentation models on your own labelled images."""

import os

# albumentations 2.x asks PyPI for its latest version on import; detft never touches the network at run time
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from .dataset import Annotation, Category, Dataset, ImageRecord, SourceRef
from .errors import DetftError, FormatError
from .report import Report

__version__ = "0.1.0"
__all__ = ["Annotation", "Category", "Dataset", "ImageRecord", "SourceRef", "DetftError", "FormatError", "Report"]
