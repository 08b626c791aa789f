"""Integrity of weight arrays: per-array SHA-256 checksums and finiteness.

A checkpoint written by `mrcnn.weights.save_weights` stores, as an HDF5
attribute ``sha256`` of every weight dataset, the SHA-256 of the array's
bytes in C order, little-endian, in the dtype it is stored in. Loading
recomputes it, so a flipped bit, a bad copy or a partial overwrite is an
error naming the file, the layer and the weight instead of silently wrong
weights. Readers that do not know the attribute (Keras 2's
``load_weights_from_hdf5_group_by_name``, Matterport's code) ignore it.

Weights that are NaN or infinite are never written by the training
checkpoints (`NonFiniteWeightsError`) and never loaded (`WeightsFileError`).
"""

import hashlib

import numpy as np

SHA256_ATTR = "sha256"
# How many layer names an error message lists before "... (N layers)".
LIST_LIMIT = 10


class WeightsFileError(ValueError):
    """A weight file that cannot be used as it is: unreadable, damaged or non-finite.

    Attributes:
        path: the file.
    """

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


class WeightsMismatchError(ValueError):
    """A file whose layers do not all fit the model, loaded with ``by_name=False``.

    Attributes:
        report: the load report (``loaded``, ``excluded``, ``missing``,
            ``shape_mismatch``) of what would have loaded; nothing was assigned.
    """

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = dict(report or {})


class NonFiniteWeightsError(FloatingPointError):
    """Weights holding NaN or infinite values, found before they were written.

    Attributes:
        layers: ``{layer name: "NaN" | "inf" | "NaN and inf"}`` in model order.
    """

    def __init__(self, message, layers=None):
        super().__init__(message)
        self.layers = dict(layers or {})


def array_sha256(array):
    """Hex SHA-256 of an array's bytes (C order, little-endian, its own dtype)."""
    a = np.ascontiguousarray(array)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return hashlib.sha256(a.reshape(-1).view(np.uint8)).hexdigest()   # no copy of the bytes


def non_finite_kind(array):
    """"NaN", "inf" or "NaN and inf" for a float array holding such values, else None."""
    a = np.asarray(array)
    if not np.issubdtype(a.dtype, np.floating) or np.isfinite(a).all():
        return None
    has_nan, has_inf = bool(np.isnan(a).any()), bool(np.isinf(a).any())
    return " and ".join(k for k, present in (("NaN", has_nan), ("inf", has_inf)) if present)


def non_finite_layers(named_arrays):
    """``{layer: "NaN" | "inf" | "NaN and inf"}`` for ``[(layer, [array, ...]), ...]``.

    Layers whose arrays are all finite (or not floating point) are left out;
    the order of `named_arrays` is kept.
    """
    out = {}
    for layer, arrays in named_arrays:
        kinds = {k for a in arrays for k in (non_finite_kind(a) or "").split(" and ") if k}
        if kinds:
            out[layer] = " and ".join(k for k in ("NaN", "inf") if k in kinds)
    return out


def describe_layers(found, limit=LIST_LIMIT):
    """``"a (NaN), b (inf), ... (N layers)"`` for a ``{layer: kind}`` dict."""
    items = [f"{name} ({kind})" for name, kind in found.items()]
    text = ", ".join(items[:limit])
    if len(items) > limit:
        text += ", ..."
    return f"{text} ({len(items)} layer{'s' if len(items) != 1 else ''})"
