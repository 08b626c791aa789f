"""Pretrained weight files: which are known, where they are, how they load.

* ``catalog``: the manifest of known files (``manifest.json`` for Mask R-CNN
  files plus each backbone's declared pretrained files): `manifest`,
  `get_entry`, `record_sha256` (pin the hash of a file you trust).
* ``files``: finding a named file locally (checked against the manifest
  before use), downloading and checking it: `locate_weights`,
  `find_weights`, `download_weights`, `verify_file`, `check_local_file`,
  `download_trained_weights` (Matterport's), `WEIGHTS_DIR_ENV`.
* ``h5``: saving / loading by layer name in the Keras 2 / Matterport HDF5
  layout: `save_weights`, `load_weights_file`, `read_named_weights`,
  `is_keras3_weights_file`.
* ``integrity``: a SHA-256 per stored array and the NaN / inf checks:
  `WeightsFileError` (a file that cannot be used as it is),
  `WeightsMismatchError` (a file whose layers do not fit the model),
  `NonFiniteWeightsError` (weights not written).
* ``backbone``: a backbone's pretrained file into the backbone part:
  `pretrained_path`, `load_backbone_weights`, `backbone_weight_layers`.
* ``loading``: `load_weights` by spec ("coco", "imagenet", "last", a path);
  `load_sample_weights` (Matterport's samples' ``--weights``, "none" included).

Example::

    from mrcnn.weights import load_weights, save_weights
    report = load_weights(keras_model, "coco", backbone=backbone, exclude="heads")
    save_weights(keras_model, "logs/mask_rcnn_cells_0001.h5")
"""

from mrcnn.weights.backbone import (backbone_weight_layers, load_backbone_weights,
                                    pretrained_path)
from mrcnn.weights.catalog import get_entry, manifest, record_sha256
from mrcnn.weights.files import (WEIGHTS_DIR_ENV, check_local_file, download_trained_weights,
                                 download_weights, find_weights, locate_weights, verify_file)
from mrcnn.weights.h5 import (is_keras3_weights_file, load_weights_file, read_named_weights,
                              save_weights)
from mrcnn.weights.integrity import (NonFiniteWeightsError, WeightsFileError,
                                     WeightsMismatchError)
from mrcnn.weights.loading import load_sample_weights, load_weights, sample_weights_line

__all__ = [
    "NonFiniteWeightsError", "WEIGHTS_DIR_ENV", "WeightsFileError", "WeightsMismatchError",
    "backbone_weight_layers",
    "check_local_file", "download_trained_weights", "download_weights", "find_weights",
    "get_entry", "is_keras3_weights_file", "load_backbone_weights", "load_weights",
    "load_sample_weights", "load_weights_file", "locate_weights", "manifest", "pretrained_path", "read_named_weights",
    "record_sha256", "sample_weights_line", "save_weights", "verify_file",
]
