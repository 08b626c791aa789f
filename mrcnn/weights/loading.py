"""Load weights given as "coco", "imagenet", "last" or a path (Matterport's ``--weights``).

Works on a ``keras.Model`` and its `backbones.Backbone`; nothing here knows
the model class that builds them::

    from mrcnn.weights import load_weights
    load_weights(keras_model, "coco", backbone=backbone, exclude="heads")
    load_weights(keras_model, "imagenet", backbone=backbone)   # the backbone's file
    load_weights(keras_model, "last", backbone=backbone, find_last=find_last)
    load_weights(keras_model, "/path/to/file.h5", backbone=backbone, by_name=True)

Named files are found (and checked against the manifest) as
`mrcnn.weights.files` describes; by-name HDF5 loading is `mrcnn.weights.h5`;
backbone files are `mrcnn.weights.backbone`. "last" with ``checkpoints``
skips a damaged newest checkpoint (with a warning) and loads the newest good one.
"""

import logging
import os
import warnings

import backbones
from mrcnn.heads.names import CLASS_SPECIFIC_LAYERS
from mrcnn.weights import files, h5
from mrcnn.weights import backbone as backbone_weights

log = logging.getLogger(__name__)

NAMED_SPECS = ("coco", "imagenet", "last")


def load_weights(keras_model, spec, *, backbone, find_last=None, checkpoints=None,
                 by_name=False, exclude=None, allow_download=False, verify=True,
                 class_specific_layers=CLASS_SPECIFIC_LAYERS, log_report=True):
    """Load weights into `keras_model` from a named file, the newest checkpoint or a path.

    Args:
        keras_model: the Mask R-CNN ``keras.Model`` (training or inference).
        spec: "coco" (Matterport's COCO model, loaded by name: layers whose
            shapes differ, e.g. another backbone's FPN inputs, are skipped and
            reported), "imagenet" (the backbone's ImageNet file, see
            `mrcnn.weights.load_backbone_weights`; likewise any other kind of
            file the backbone declares), "last" (``find_last()``) or a file
            path. Names are case-insensitive; a file literally called "coco"
            must be given as "./coco".
        backbone: the model's `backbones.Backbone` (or a registered name).
        find_last: ``fn() -> path`` of the newest checkpoint, for "last".
        checkpoints: ``fn() -> [path, ...]`` newest first (e.g.
            `mrcnn.training.runs.list_checkpoints`), for "last": a damaged
            checkpoint (unreadable, truncated, checksum mismatch, NaN
            weights) is skipped with a RuntimeWarning and the next one loaded.
        by_name: for "last" and paths (see `h5.load_weights_file`);
            "coco" and "imagenet" always load by name.
        exclude: layer names, a regex, or "heads" (`class_specific_layers`:
            use it for COCO weights with another NUM_CLASSES).
        allow_download: download a named file that is not found locally.
        verify: check a named file ("coco", "imagenet") found locally against
            the manifest before loading it; False skips that check (the
            per-array checksums and the NaN check of every file stay).
        class_specific_layers: the layers whose shapes depend on NUM_CLASSES.
        log_report: log the load (`log_load_report`); False leaves it to the caller.

    Returns:
        the report of `h5.load_weights_file` (``loaded``, ``excluded``,
        ``missing``, ``shape_mismatch``) plus ``path``, the file loaded; for
        backbone files also ``method`` and ``backbone_not_loaded``; for
        "last" also ``skipped``: [(path, reason)] of damaged newer checkpoints.

    Raises:
        TypeError: `spec` is not a string or path.
        FileNotFoundError: the file is missing (for names: where it was
            looked for and how to provide it).
        ValueError: nothing in the file matches the model; "last" without
            `find_last`; "imagenet" for a backbone that declares no such file;
            a named file that does not match the manifest (with `verify`).
        WeightsFileError (a ValueError): the file is unreadable, damaged or
            holds NaN / inf weights (for "last": every checkpoint is).
    """
    report = _load(keras_model, spec, backbones.get(backbone), find_last, checkpoints,
                   by_name, exclude, allow_download, verify, class_specific_layers)
    if log_report:
        log_load_report(report)
    return report


def log_load_report(report):
    """Log what a load did (info) and each layer skipped for its shape (warning)."""
    log.info("loaded %d layers from %s (excluded %d, missing %d, shape mismatch %d)",
             len(report["loaded"]), report["path"], len(report["excluded"]),
             len(report["missing"]), len(report["shape_mismatch"]))
    for name, want, got in report["shape_mismatch"]:
        log.warning("skipped %s: model shapes %s, file shapes %s", name, want, got)


def _load(keras_model, spec, backbone, find_last, checkpoints, by_name, exclude,
          allow_download, verify, class_specific_layers):
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"weights must be 'coco', 'imagenet', 'last' or a file path, "
                        f"got {spec!r}")
    key = spec.lower() if isinstance(spec, str) else None
    if key == "imagenet" or (key in backbone.pretrained and key not in NAMED_SPECS):
        return backbone_weights.load_backbone_weights(
            keras_model, backbone, allow_download=allow_download, exclude=exclude, kind=key,
            verify=verify)
    if key == "last":
        return _load_last(keras_model, find_last, checkpoints, by_name=by_name, exclude=exclude,
                          class_specific_layers=class_specific_layers)
    if key == "coco":
        path = files.locate_weights("coco", allow_download=allow_download, verify=verify)
        report = h5.load_weights_file(keras_model, path, by_name=True, exclude=exclude,
                                      class_specific_layers=class_specific_layers)
        if not report["loaded"]:
            raise ValueError(f"{path}: no layer of the model was found in the file; expected "
                             f"Matterport's COCO weights (layer names like fpn_c5p5, "
                             f"rpn_model, mrcnn_class_logits)")
    else:
        path = os.fspath(spec)
        report = h5.load_weights_file(keras_model, path, by_name=by_name, exclude=exclude,
                                      class_specific_layers=class_specific_layers)
    report["path"] = path
    return report


def _load_last(keras_model, find_last, checkpoints, **options):
    """The newest checkpoint that loads; damaged newer ones are skipped with a warning."""
    if find_last is None and checkpoints is None:
        raise ValueError("weights 'last' need find_last=<function returning the "
                         "newest checkpoint's path>, got find_last=None")
    candidates = list(checkpoints()) if checkpoints is not None else []
    if not candidates:
        if find_last is None:
            raise FileNotFoundError("weights 'last': no checkpoint found")
        candidates = [find_last()]        # raises FileNotFoundError naming the folder
    skipped = []
    for path in candidates:
        try:
            report = h5.load_weights_file(keras_model, path, **options)
        except h5.WeightsFileError as exc:
            skipped.append((path, str(exc)))
            warnings.warn(f"weights 'last': skipped the damaged checkpoint {path}: {exc}",
                          RuntimeWarning, stacklevel=3)
            continue
        report["path"], report["skipped"] = path, skipped
        return report
    raise h5.WeightsFileError(   # each reason names its file
        f"weights 'last': all {len(skipped)} checkpoints are damaged: "
        + "; ".join(reason for _, reason in skipped), skipped[0][0])


#: COCO's class count (80 categories + background): the class-specific layers of the COCO
#: file fit a model of this NUM_CLASSES only.
COCO_NUM_CLASSES = 81


def load_sample_weights(model, spec, coco_path=None):
    """Matterport's samples' ``--weights`` / ``--model``: coco, imagenet, last, none or a path.

    "coco" reads `coco_path` when that file exists (where Matterport's samples
    kept ``mask_rcnn_coco.h5``), else the named file (found, or downloaded, as
    `mrcnn.weights.files` describes); its class-specific layers are left out
    when the model's NUM_CLASSES is not COCO's 81. "last" resumes the newest
    run; a path loads by layer name.

    Args:
        model: a `MaskRCNN` (its ``load_weights`` and ``config``).
        spec: the command line's value (any case for the names).
        coco_path: optional local path of the COCO file.

    Returns:
        the load report (``path``, ``loaded``, ``excluded``, ...), or None for "none".

    Raises:
        FileNotFoundError, ValueError, OSError: as `MaskRCNN.load_weights` (a
            missing file, a failed download, a file that does not fit).
    """
    name = str(spec).lower()
    if name == "none":
        return None
    exclude = None
    if name == "coco":
        spec = coco_path if coco_path and os.path.exists(coco_path) else "coco"
        if model.config.NUM_CLASSES != COCO_NUM_CLASSES:
            exclude = "heads"
    elif name in NAMED_SPECS:
        spec = name
    return model.load_weights(spec, by_name=True, exclude=exclude,
                              allow_download=name in ("coco", "imagenet"))


def sample_weights_line(report):
    """What a sample prints after `load_sample_weights`: the file and what was left out."""
    if report is None:
        return "Starting from random weights"
    left_out = f" (left out: {', '.join(report['excluded'])})" if report["excluded"] else ""
    return f"Loaded weights {report['path']}{left_out}"
