"""The labelling loop around a trained model: its predictions written as pre-labels in the user's tool, unlabelled
images ranked by what a label would teach, and pseudo-labels for training."""
