"""ILSVRC-style manifests, exports and the dataset card (issue 6)."""
