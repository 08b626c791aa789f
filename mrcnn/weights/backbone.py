"""Pretrained weights for the backbone part of a model (ImageNet files and the like).

The backbone's layers are the model's layers that are not FPN, RPN or head
layers (``mrcnn.heads.names.part_of``); a nested backbone model (the
EfficientNetV2 family) is entered. The files a backbone knows are the ones
it declares (``backbones.register(..., pretrained=...)``); a file named
another way loads through the backbone's ``rename`` when that matches more
of its layers (keras.applications' ResNet files into Matterport's ResNet).
"""

import logging
import os
import tempfile

import backbones
from mrcnn.heads.names import part_of
from mrcnn.layers.walk import is_container, leaf_layers
from mrcnn.weights import h5
from mrcnn.weights.catalog import backbone_entry
from mrcnn.weights.files import locate_weights

log = logging.getLogger(__name__)


def backbone_weight_layers(keras_model):
    """Names of the backbone's leaf layers that hold weights, in model order.

    Args:
        keras_model: the Mask R-CNN ``keras.Model`` (training or inference).
    """
    names = []
    for layer in keras_model.layers:
        if layer.weights and part_of(layer.name) == "backbone":
            leaves = leaf_layers(layer) if is_container(layer) else [layer]
            names += [leaf.name for leaf in leaves if leaf.weights]
    return names


def _backbone_submodel(keras_model, backbone):
    """The nested backbone model (EfficientNetV2), or None for inline backbones."""
    for layer in keras_model.layers:
        if layer.name == backbone.name and is_container(layer):
            return layer
    return None


def pretrained_path(backbone, kind="imagenet", allow_download=False, verify=True):
    """Path of a backbone's pretrained file (looked up locally, downloaded if allowed).

    Args:
        backbone: a `backbones.Backbone`, a registered name or a builder.
        kind: the kind of file the backbone declares ("imagenet", ...).
        allow_download: download the file when no local copy exists.
        verify: check a local copy against the declaration (size, md5,
            sha256; see `mrcnn.weights.files.check_local_file`).

    Raises:
        ValueError: the backbone declares no such file; with `verify`, the
            local copy does not match the declaration.
        FileNotFoundError: no local copy (and not downloaded); the message
            says where it looked and how to provide the file.
    """
    return locate_weights(backbone_entry(backbones.get(backbone), kind),
                          allow_download=allow_download, verify=verify)


def _should_rename(file_names, wanted, rename):
    """True when `rename` maps more of the file's layers onto `wanted` than the names as they are."""
    if rename is None or not file_names:
        return False
    wanted = set(wanted)
    as_is = sum(1 for n in file_names if n in wanted)
    renamed = sum(1 for n in file_names if rename(n) in wanted)
    return renamed > as_is


def _structural_load(sub, path, name):
    try:
        sub.load_weights(path)
    except ValueError as exc:
        raise ValueError(
            f"{path} does not match backbone {name!r}: no layer names in common and "
            f"loading by layer order failed ({exc}). Expected a file saved from "
            f"keras.applications with include_top=False or from the sub-model "
            f"keras_model.get_layer({name!r})") from exc


def load_backbone_weights(keras_model, backbone, path=None, allow_download=False,
                          exclude=None, kind="imagenet", verify=True):
    """Load ImageNet (or other pretrained) weights into the backbone only.

    Args:
        keras_model: the Mask R-CNN ``keras.Model``.
        backbone: its `backbones.Backbone` (or a registered name).
        path: a weights file; None looks up the file the backbone declares
            for `kind` (see `pretrained_path`). Accepted files: Keras-2
            layout ``.h5`` with the backbone's layer names (Matterport's
            ResNet names, keras.applications' EfficientNetV2 names), a file
            whose names the backbone's ``rename`` translates (a
            keras.applications ResNet file), or, for a nested backbone
            (EfficientNetV2), a Keras 3 ``.weights.h5`` saved from that
            sub-model or a legacy ``.h5`` of the same architecture with
            other names (loaded by layer order).
        allow_download: download the declared file if it is not found locally.
        exclude: layer names / regex not to load (as in `h5.load_weights_file`).
        kind: which declared file to use when `path` is None.
        verify: check the declared file found by name against the
            declaration before loading it (not used with an explicit `path`).

    Returns:
        the `h5.load_weights_file` report plus ``path``, ``method`` ("by
        name", "by name (renamed)", "by order" or "structure") and
        ``backbone_not_loaded`` (backbone layers left as they were).

    Raises:
        FileNotFoundError: no file (message says where to put it).
        ValueError: the file holds none of the backbone's layers; the file
            found by name does not match the declaration (with `verify`).
        WeightsFileError: the file is damaged or holds NaN / inf weights.
    """
    backbone = backbones.get(backbone)
    name = backbone.name
    if path is None:
        path = pretrained_path(backbone, kind, allow_download=allow_download, verify=verify)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"backbone weights file not found: {path}")
    wanted = backbone_weight_layers(keras_model)
    sub = _backbone_submodel(keras_model, backbone)

    if h5.is_keras3_weights_file(path):
        if sub is None:
            raise ValueError(f"{path} is a Keras 3 '.weights.h5' file (stored by structure); "
                             f"backbone {name!r} is built inline, so such a file cannot be "
                             f"matched to it. Use a by-name '.h5' file")
        _structural_load(sub, path, name)
        report = {"loaded": list(wanted), "excluded": [], "missing": [],
                  "shape_mismatch": [], "method": "structure"}
    else:
        file_names = h5.file_layer_names(path) or []
        if _should_rename(file_names, wanted, backbone.rename):
            with tempfile.TemporaryDirectory() as tmp:
                renamed = h5.renamed_copy(path, os.path.join(tmp, "renamed.h5"),
                                          backbone.rename)
                report = h5.load_weights_file(keras_model, renamed, by_name=True,
                                              exclude=exclude)
            report["method"] = "by name (renamed)"
        else:
            report = h5.load_weights_file(keras_model, path, by_name=True, exclude=exclude)
            report["method"] = "by name"
        if not set(wanted) & set(report["loaded"]):
            if sub is None or exclude:
                raise ValueError(
                    f"{path} holds none of the {len(wanted)} weight layers of backbone "
                    f"{name!r} (e.g. {wanted[:3]}); the file's layers are named like "
                    f"{file_names[:5]}")
            _structural_load(sub, path, name)
            report = {"loaded": list(wanted), "excluded": [], "missing": [],
                      "shape_mismatch": [], "method": "by order"}
    done = set(report["loaded"]) | set(report["excluded"])
    report["backbone_not_loaded"] = [n for n in wanted if n not in done]
    if report["backbone_not_loaded"]:
        log.warning("%d of %d backbone layers were not in %s, e.g. %s",
                    len(report["backbone_not_loaded"]), len(wanted), path,
                    report["backbone_not_loaded"][:5])
    report["path"] = path
    return report
