"""ILSVRC-style manifests and what is made from them: validation, exports, imports and the dataset card."""
