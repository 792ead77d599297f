"""The AlexNet baseline trainer that validates a dataset: ``make train``.

If AlexNet learns a dataset the way it learned ILSVRC, its labels and splits are sound; a
class it cannot learn is a class to look at. ``python -m baseline train|summary|evaluate``.

- ``model``: torchvision-compatible AlexNet and the BVLC CaffeNet, and the per-layer summary
  (shapes, parameters, receptive fields, multiply-adds);
- reading the data: ``manifests`` (the manifests stage's tables) or ``packed`` (a packed
  export) -> ``dataset`` (classes, and where each sample's bytes are) -> ``transforms`` (crop
  geometry; Pillow in DataLoader workers, or nvJPEG on the GPU) -> ``loaders`` (batches on the
  device), with ``stats`` (pixel mean, std and colour PCA) and ``ddp`` (each rank's part of
  an epoch under torchrun);
- training: ``config`` (settings), ``train`` (the loop), ``evaluate`` (ILSVRC scoring, and
  rescoring a finished run), ``run_folder`` (checkpoints and the run's files), ``console``;
- ``metrics``: ILSVRC's top-k error, per-class accuracy, the confusion matrix;
- ``plot``: the loss and error curves, drawn with matplotlib.

Imports torch, numpy, pyarrow, Pillow and matplotlib (torchvision when present, never
required) and the pipeline's table layout, so it runs on a stock GPU image.
"""
