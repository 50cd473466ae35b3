"""The embedded default dataset (``shapes``), installed with detft as the package ``detft.datasets``
so that ``detft train`` without ``--data`` works from a plain ``pip install``."""
