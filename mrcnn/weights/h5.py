"""Save and load weights by layer name (HDF5).

Checkpoints are written in the Keras 2 / Matterport HDF5 layout (root
attribute ``layer_names``; one group per layer holding its weights with a
``weight_names`` attribute in ``get_weights()`` order), which is what
Matterport's ``mask_rcnn_coco.h5`` and keras.applications' ImageNet files use.
Loading by name is what lets a checkpoint of the training model load into
the inference model (they share layer names, not structure), and lets COCO
weights load into a model with another NUM_CLASSES (``exclude``).

Nested models (the RPN ``rpn_model``, an EfficientNetV2 backbone) are one
group holding all their weights, named ``<inner layer>/<weight>:0``; on
loading, a nested model is matched as a whole by its name or, failing that,
layer by layer by its inner layers' names.

Keras 3 ``.weights.h5`` files (``keras_model.save_weights``) are structural,
not named: they load only into the same architecture, with ``by_name=False``.

Integrity (`mrcnn.weights.integrity`): every array written here carries a
SHA-256 attribute (root attribute ``mrcnn_format`` ``"by-name-2"``), checked
on reading; files without checksums (Matterport's, keras.applications',
older checkpoints: ``"by-name-1"``) load as before. Loading refuses NaN or
infinite weights, and assigns nothing unless the whole load succeeds.
Every error names the file (and the layer / weight): an unreadable or
truncated file, a checksum mismatch or non-finite values raise
`WeightsFileError` (a ValueError).
"""

import contextlib
import os
import re
import tempfile

import h5py
import keras
import numpy as np

from mrcnn.heads.names import CLASS_SPECIFIC_LAYERS
from mrcnn.layers.walk import is_container, leaf_layers
from mrcnn.weights import integrity
from mrcnn.weights.integrity import NonFiniteWeightsError, WeightsFileError, WeightsMismatchError

# Root attribute ``mrcnn_format``: "by-name-2" files hold a SHA-256 per array.
FORMAT = "by-name-2"
FORMATS_WITH_CHECKSUMS = ("by-name-2",)


def _decode(values):
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


@contextlib.contextmanager
def open_file(filepath, mode="r"):
    """``h5py.File`` whose errors name the file.

    Raises:
        FileNotFoundError: no such file.
        WeightsFileError: not a readable HDF5 file (truncated, damaged, another format).
    """
    filepath = os.fspath(filepath)
    try:
        f = h5py.File(filepath, mode)
    except FileNotFoundError:
        raise FileNotFoundError(f"weights file not found: {filepath}") from None
    except OSError as exc:
        raise WeightsFileError(
            f"{filepath} is not a readable HDF5 weights file ({exc}); it may be truncated "
            f"(a copy, download or save that did not finish) or not a weights file",
            filepath) from exc
    with f:
        yield f


def _read_dataset(filepath, dataset, what):
    """The array of an h5py dataset; a read error names the file and `what`."""
    try:
        return np.asarray(dataset[()])
    except OSError as exc:
        raise WeightsFileError(f"{filepath}: cannot read {what} ({exc}); the file is damaged "
                               f"or truncated", filepath) from exc


def _leaf_of(weight_name, layer):
    """The layer a weight belongs to: ``<leaf>/<var>:0`` -> leaf, else the group's layer."""
    return weight_name.rsplit("/", 1)[0] if "/" in weight_name else layer


def _by_leaf(named):
    """``[(layer, [(weight name, array)])]`` -> ``[(leaf layer, [array])]`` in order."""
    out = {}
    for layer, items in named:
        for name, arr in items:
            out.setdefault(_leaf_of(name, layer), []).append(arr)
    return list(out.items())


def _root(f):
    """The group holding ``layer_names`` (full-model Keras 2 files nest it in ``model_weights``)."""
    return f["model_weights"] if "model_weights" in f and "layer_names" not in f.attrs else f


def weight_layers(model):
    """Top-level layers of `model` that own weights, in model order."""
    return [layer for layer in model.layers if layer.weights]


def _named_weights(layer):
    """[(weight_name, variable)] for a layer; nested models by their leaf layers."""
    leaves = leaf_layers(layer) if is_container(layer) else [layer]
    return [(f"{leaf.name}/{var.name}:0", var) for leaf in leaves for var in leaf.weights]


def save_weights(model, filepath, finite_only=False):
    """Write `model`'s weights by layer name, atomically, with a SHA-256 per array.

    The file is written to a temporary file (``.tmp-*.h5``) in the same
    folder and renamed, so an interrupted save never leaves a truncated
    checkpoint.

    Args:
        model: a keras.Model.
        filepath: the ``.h5`` file to write (folders are created).
        finite_only: refuse to write weights holding NaN or inf (the
            training checkpoints do); nothing is written then.

    Returns:
        `filepath` (as a string).

    Raises:
        NonFiniteWeightsError: with `finite_only`, naming the layers (its
            ``layers`` attribute lists them).
    """
    filepath = os.fspath(filepath)
    layers = weight_layers(model)
    named = [(layer.name, [(n, keras.ops.convert_to_numpy(v)) for n, v in _named_weights(layer)])
             for layer in layers]
    if finite_only:
        found = integrity.non_finite_layers(_by_leaf(named))
        if found:
            raise NonFiniteWeightsError(
                f"{filepath} not written: non-finite weights in "
                f"{integrity.describe_layers(found)}", layers=found)
    folder = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".h5")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["layer_names"] = np.array([l.name.encode("utf8") for l in layers])
            f.attrs["backend"] = keras.backend.backend().encode("utf8")
            f.attrs["keras_version"] = keras.__version__.encode("utf8")
            f.attrs["mrcnn_format"] = FORMAT.encode("utf8")
            for layer_name, items in named:
                g = f.create_group(layer_name)
                g.attrs["weight_names"] = np.array([n.encode("utf8") for n, _ in items])
                for name, arr in items:
                    d = g.create_dataset(name, data=arr)
                    d.attrs[integrity.SHA256_ATTR] = integrity.array_sha256(arr)
        os.replace(tmp, filepath)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return filepath


def is_keras3_weights_file(filepath):
    """True for a Keras 3 ``.weights.h5`` file (stored by structure, not by layer name).

    Raises:
        FileNotFoundError, WeightsFileError: see `open_file`.
    """
    with open_file(filepath) as f:
        return "layer_names" not in f.attrs and "layers" in f and "model_weights" not in f


def file_layer_names(filepath, with_weights=False):
    """Layer names of a Keras 2 / Matterport-layout file, in file order.

    Args:
        filepath: the ``.h5`` file.
        with_weights: only the layers that hold weights.

    Returns:
        A list of names, or None when the file has no ``layer_names``
        (e.g. a Keras 3 ``.weights.h5``).

    Raises:
        FileNotFoundError, WeightsFileError: see `open_file`.
    """
    with open_file(filepath) as f:
        root = _root(f)
        names = root.attrs.get("layer_names")
        if names is None:
            return None
        names = _decode(names)
        if with_weights:
            names = [n for n in names if len(root[n].attrs.get("weight_names", []))]
        return names


def renamed_copy(src, dst, rename):
    """Copy a Keras-2 layout file, renaming its layers with ``rename(name) -> new name or None``.

    Layers without weights and those `rename` maps to None are left out.
    """
    with open_file(src) as fin, h5py.File(dst, "w") as fout:
        root = _root(fin)
        kept = []
        for name in _decode(root.attrs.get("layer_names", [])):
            new = rename(name)
            if new is None or not len(root[name].attrs.get("weight_names", [])):
                continue
            fin.copy(root[name], fout, name=new)
            kept.append(new.encode("utf8"))
        fout.attrs["layer_names"] = np.array(kept)
    return dst


def read_named_weights(filepath):
    """Read a Keras 2 / Matterport-layout HDF5 file.

    Returns:
        groups: dict layer name -> list of (weight name, array) in file order.
        inner: dict inner layer name -> list of arrays, from weight names of the
            form ``<inner>/<weight>:0`` inside every group (nested models).

    Every array that carries a SHA-256 attribute is checked against it; in
    a file whose ``mrcnn_format`` promises checksums, every array must carry one.

    Raises:
        ValueError: the file has no ``layer_names`` (e.g. Keras 3 ``.weights.h5``).
        FileNotFoundError: no such file.
        WeightsFileError: unreadable, truncated, or an array does not match
            its checksum (naming the layer and the weight).
    """
    filepath = os.fspath(filepath)
    groups, inner = {}, {}
    with open_file(filepath) as f:
        root = _root(f)
        if "layer_names" not in root.attrs:
            raise ValueError(
                f"{filepath} is not a Keras 2 / Matterport weights file (no 'layer_names' "
                f"attribute); Keras 3 '.weights.h5' files load with by_name=False only")
        fmt = _decode([f.attrs.get("mrcnn_format", b"")])[0]
        for lname in _decode(root.attrs["layer_names"]):
            if lname not in root:
                raise WeightsFileError(f"{filepath} lists layer {lname!r} in 'layer_names' but "
                                       f"holds no group for it; the file is damaged", filepath)
            g = root[lname]
            names = _decode(g.attrs.get("weight_names", []))
            items = [(n, _checked_array(filepath, g, lname, n, fmt)) for n in names]
            groups[lname] = items
            for n, arr in items:
                prefix = n.split("/")[-2] if "/" in n else lname
                inner.setdefault(prefix, []).append(arr)
    return groups, inner


def _checked_array(filepath, group, layer, name, fmt):
    """One weight array of a layer group, checked against its SHA-256 attribute."""
    what = f"weight {name!r} of layer {layer!r}"
    if name not in group:
        raise WeightsFileError(f"{filepath}: {what} is listed in 'weight_names' but missing; "
                               f"the file is damaged", filepath)
    dataset = group[name]
    arr = _read_dataset(filepath, dataset, what)
    expected = dataset.attrs.get(integrity.SHA256_ATTR)
    if expected is None:
        if fmt in FORMATS_WITH_CHECKSUMS:
            raise WeightsFileError(f"{filepath}: {what} has no SHA-256 although the file "
                                   f"({fmt}) stores one per array; the file was altered",
                                   filepath)
        return arr
    expected = _decode([expected])[0]
    found = integrity.array_sha256(arr)
    if found != expected:
        raise WeightsFileError(
            f"{filepath} is damaged: {what} does not match its SHA-256 (stored {expected}, "
            f"computed {found}). Use another checkpoint (load_weights('last') skips damaged "
            f"ones) or a fresh copy of the file", filepath)
    return arr


def _check_finite_keras3(filepath):
    """Refuse a Keras 3 ``.weights.h5`` file holding NaN or inf (datasets named by path)."""
    found = {}
    with open_file(filepath) as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                kind = integrity.non_finite_kind(_read_dataset(filepath, obj, f"dataset {name}"))
                if kind:
                    found[name] = kind
        f.visititems(visit)
    if found:
        raise WeightsFileError(f"{filepath} holds non-finite weights in "
                               f"{integrity.describe_layers(found)}; it was saved from a "
                               f"model that diverged", filepath)


def exclude_matcher(exclude, class_specific_layers=CLASS_SPECIFIC_LAYERS):
    """``fn(layer_name) -> bool`` for an `exclude` argument.

    Args:
        exclude: None (nothing), a list of layer names, a regex string
            (``re.fullmatch``), or "heads" (the names in `class_specific_layers`).
        class_specific_layers: the layers "heads" stands for.
    """
    if exclude is None:
        return lambda name: False
    if isinstance(exclude, str):
        if exclude == "heads":
            names = set(class_specific_layers)
            return lambda name: name in names
        pattern = re.compile(exclude)
        return lambda name: bool(pattern.fullmatch(name))
    names = set(exclude)
    return lambda name: name in names


def _refuse_non_finite(filepath, plan):
    """WeightsFileError naming the layers of `plan` whose arrays are NaN or inf."""
    found = integrity.non_finite_layers([(name, arrays) for name, _, arrays in plan])
    if found:
        raise WeightsFileError(
            f"{filepath} holds non-finite weights in {integrity.describe_layers(found)}; it "
            f"was saved from a model that diverged. Load an earlier checkpoint, or skip "
            f"these layers with exclude=[...]", filepath)


def _assign(variables, arrays):
    for var, arr in zip(variables, arrays):
        var.assign(arr.astype(var.dtype) if hasattr(arr, "astype") else arr)


def _mismatch_error(filepath, report):
    details = []
    if report["missing"]:
        details.append(f"not in the file: {report['missing'][:10]}"
                       + (" ..." if len(report["missing"]) > 10 else ""))
    if report["shape_mismatch"]:
        details.append("different shapes: " + ", ".join(
            f"{n} (model {w}, file {g})" for n, w, g in report["shape_mismatch"][:5]))
    return WeightsMismatchError(
        f"{filepath} does not match the model ({'; '.join(details)}). Use by_name=True "
        f"to load the layers that match, and exclude=[...] to skip layers on purpose "
        f"(e.g. exclude='heads' for a different NUM_CLASSES)", report)


def load_weights_file(model, filepath, by_name=False, exclude=None,
                      class_specific_layers=CLASS_SPECIFIC_LAYERS):
    """Load weights into `model` from an HDF5 file.

    Args:
        model: a keras.Model.
        filepath: a Keras 2 / Matterport-layout ``.h5`` (loaded by layer name)
            or a Keras 3 ``.weights.h5`` (loaded by structure).
        by_name: with False, every weight layer of the model must be found
            in the file with the right shapes (else ValueError listing what
            is missing); with True, layers missing from the file or of a
            different shape are skipped and reported.
        exclude: layer names to skip: a list of names, a regex string, or
            "heads" for the NUM_CLASSES-specific layers.
        class_specific_layers: what "heads" stands for (default
            ``mrcnn_class_logits``, ``mrcnn_bbox_fc``, ``mrcnn_bbox``, ``mrcnn_mask``).

    Returns:
        dict with lists ``loaded``, ``excluded``, ``missing`` (no such name in
        the file) and ``shape_mismatch`` ((name, model shapes, file shapes)).

    Nothing is assigned unless the whole load succeeds.

    Raises:
        FileNotFoundError: no such file.
        WeightsMismatchError (a ValueError): with by_name=False, a layer is
            missing or of another shape (its ``report`` says which).
        ValueError: a Keras 3 file with by_name=True or an exclude.
        WeightsFileError (a ValueError): the file is unreadable or truncated,
            an array does not match its SHA-256, or a layer to load holds NaN
            or inf; the message names the file and the layers.
    """
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"weights file not found: {filepath}")
    if is_keras3_weights_file(filepath):
        if by_name or exclude:
            raise ValueError(
                f"{filepath} is a Keras 3 '.weights.h5' file, which stores weights by "
                f"structure, not by layer name; load it with by_name=False and no exclude, "
                f"or save checkpoints with mrcnn.weights.save_weights to load by name")
        _check_finite_keras3(filepath)
        model.load_weights(filepath)
        names = [l.name for l in weight_layers(model)]
        return {"loaded": names, "excluded": [], "missing": [], "shape_mismatch": []}

    groups, inner = read_named_weights(filepath)
    excluded = exclude_matcher(exclude, class_specific_layers)
    report = {"loaded": [], "excluded": [], "missing": [], "shape_mismatch": []}
    plan = []   # (name, variables, arrays): assigned once everything is checked

    def try_layer(name, variables, arrays):
        want = [tuple(v.shape) for v in variables]
        got = [tuple(a.shape) for a in arrays]
        if want != got:
            report["shape_mismatch"].append((name, want, got))
            return
        plan.append((name, variables, arrays))
        report["loaded"].append(name)

    for layer in weight_layers(model):
        if excluded(layer.name):
            report["excluded"].append(layer.name)
            continue
        if is_container(layer):
            # leaf by leaf also when the file holds the container's group: an excluded or
            # mismatched inner layer (the class-specific mrcnn_mask inside the JAX mask
            # head) then skips that layer only
            for sub in leaf_layers(layer):
                if not sub.weights:
                    continue
                if excluded(sub.name):
                    report["excluded"].append(sub.name)
                    continue
                arrays = ([a for _, a in groups[sub.name]] if sub.name in groups
                          else inner.get(sub.name))
                if arrays is None:
                    report["missing"].append(sub.name)
                else:
                    try_layer(sub.name, [v for _, v in _named_weights(sub)], arrays)
        elif layer.name in groups:
            try_layer(layer.name, [v for _, v in _named_weights(layer)],
                      [a for _, a in groups[layer.name]])
        elif layer.name in inner:
            try_layer(layer.name, [v for _, v in _named_weights(layer)], inner[layer.name])
        else:
            report["missing"].append(layer.name)

    if not by_name and (report["missing"] or report["shape_mismatch"]):
        raise _mismatch_error(filepath, report)
    _refuse_non_finite(filepath, plan)
    for _, variables, arrays in plan:
        _assign(variables, arrays)
    return report
