"""Torch-side data: datasets over detft Datasets, albumentations pipelines, batching."""
