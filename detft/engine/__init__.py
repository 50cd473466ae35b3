"""Training engine for torchvision detection models."""
