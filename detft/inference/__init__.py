"""Inference: one Predictor interface for every architecture, and what it returns."""

from .detections import Detections

__all__ = ["Detections"]
