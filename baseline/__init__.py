"""The AlexNet baseline trainer that validates a dataset (issue 7): ``make train``.

If AlexNet learns a dataset the way it learned ILSVRC, its labels and splits are sound; a
class it cannot learn is a class to look at. ``python -m baseline train|summary|evaluate``.

- ``model``: torchvision-compatible AlexNet and the BVLC CaffeNet, and the per-layer summary
  (shapes, parameters, receptive fields, multiply-adds);
- ``data``: manifests or a packed export -> image bytes -> crops (Pillow in DataLoader workers,
  or nvJPEG on the GPU);
- ``train``: the training loop, checkpoints and the final evaluation;
- ``metrics``: ILSVRC's top-k error, per-class accuracy, the confusion matrix;
- ``plot``: the loss and error curves, drawn with Pillow.

Imports only torch, numpy, pyarrow and Pillow (torchvision when present, never required), and
``pipeline.errors`` (standard library only), so it runs on a stock GPU image.
"""
