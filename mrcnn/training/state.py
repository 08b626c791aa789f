"""The training state beside a checkpoint: optimizer variables and random-number state.

A checkpoint (``mask_rcnn_<name>_<epoch>.h5``) holds the model's weights
only, by layer name (Matterport's format, loadable on its own). To continue
a run exactly, each checkpoint gets a sidecar ``train_state_<name>_<epoch>.h5``
(`mrcnn.training.runs.state_path`) holding:

* every optimizer variable: the step counter (``iterations``, which drives
  the learning-rate schedule), SGD momentum, AdamW's moments, a loss scale;
  keyed by the optimizer variable's path without the optimizer's own name
  (``sgd/conv1_kernel_momentum`` -> ``conv1_kernel_momentum``), so the state
  of a run that trained other layers restores the slots both have;
* the model's non-weight variables: the state of its random-number
  generators (the ROI sampling of the detection targets), by position;
* ``weights_fingerprint``: a SHA-256 over the checkpoint's per-array
  SHA-256s, so a state is only ever restored next to the weights it was
  saved with (a state left from an abandoned branch, or the checkpoint of a
  save killed before its state was written, is reported and not used).

It is written atomically (temporary file + rename) with a SHA-256 per
array, verified when read, like the checkpoints (`mrcnn.weights.integrity`).
"""

import hashlib
import os
import tempfile
import warnings

import h5py
import keras
import numpy as np

from mrcnn.training.runs import state_path
from mrcnn.weights import h5
from mrcnn.weights.integrity import SHA256_ATTR, WeightsFileError, array_sha256

FORMAT = "train-state-1"
# Optimizer variables not restored: the learning rate of the new train() call wins.
NOT_RESTORED = ("learning_rate",)


class StateFileError(ValueError):
    """A training-state file that cannot be used: damaged, or not the checkpoint's."""


def optimizer_key(variable):
    """The name an optimizer variable is stored under: its path without the optimizer's name.

    Optimizers of the same class share a name up to a ``_<n>`` suffix Keras
    adds per process; a wrapper (LossScaleOptimizer) keeps the inner one's
    prefix so its ``iteration`` and the inner ``iteration`` stay apart.
    """
    path = variable.path
    first, _, rest = path.partition("/")
    if not rest:
        return path
    base = first.rstrip("0123456789")
    base = base[:-1] if base.endswith("_") and base != first else first
    return f"{base}/{rest}"


def _text(values):
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _unique(keys):
    seen, out = {}, []
    for key in keys:
        seen[key] = seen.get(key, 0) + 1
        out.append(key if seen[key] == 1 else f"{key}#{seen[key]}")
    return out


def optimizer_arrays(optimizer):
    """``{key: array}`` of an optimizer's variables (empty when it is not built)."""
    if optimizer is None or not getattr(optimizer, "built", False):
        return {}
    variables = list(optimizer.variables)
    keys = _unique(optimizer_key(v) for v in variables)
    return {k: keras.ops.convert_to_numpy(v) for k, v in zip(keys, variables)}


def random_variables(keras_model):
    """The model's variables that are not weights: its random generators' states."""
    weights = {id(v) for v in keras_model.weights}
    return [v for v in keras_model.variables if id(v) not in weights]


def weights_fingerprint(weights_path):
    """SHA-256 over the per-array SHA-256s of a by-name checkpoint, in file order.

    Returns:
        hex digest, or None when the file stores no checksums (an older or
        foreign file: its state cannot be matched to it).

    Raises:
        FileNotFoundError, WeightsFileError: see `mrcnn.weights.h5.open_file`.
    """
    digest = hashlib.sha256()
    with h5.open_file(weights_path) as f:
        names = f.attrs.get("layer_names")
        if names is None:
            return None
        for layer in _text(names):
            group = f[layer]
            for name in _text(group.attrs.get("weight_names", [])):
                sha = group[name].attrs.get(SHA256_ATTR) if name in group else None
                if sha is None:
                    return None
                digest.update(_text([sha])[0].encode("ascii") + b"\n")
    return digest.hexdigest()


def save_state(path, optimizer, keras_model, weights_path, epoch):
    """Write the training state of the checkpoint `weights_path` to `path`, atomically.

    Args:
        path: the state file (``runs.state_path(weights_path)``).
        optimizer: the built optimizer of the run.
        keras_model: the training model (its random-generator states).
        weights_path: the checkpoint just written (its fingerprint is stored).
        epoch: the checkpoint's epoch.

    Returns:
        `path`.
    """
    path = os.fspath(path)
    groups = {"optimizer": optimizer_arrays(optimizer),
              "random": {str(i): keras.ops.convert_to_numpy(v)
                         for i, v in enumerate(random_variables(keras_model))}}
    fingerprint = weights_fingerprint(weights_path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-state-", suffix=".h5")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["mrcnn_format"] = FORMAT
            f.attrs["epoch"] = int(epoch)
            f.attrs["weights_fingerprint"] = fingerprint or ""
            f.attrs["optimizer"] = type(optimizer).__name__
            f.attrs["backend"] = keras.backend.backend()
            for group_name, arrays in groups.items():
                g = f.create_group(group_name)
                g.attrs["names"] = np.array([k.encode("utf8") for k in arrays])
                for i, arr in enumerate(arrays.values()):
                    d = g.create_dataset(str(i), data=arr)
                    d.attrs[SHA256_ATTR] = array_sha256(arr)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_state(path, weights_path=None):
    """Read a training-state file, checking every array's SHA-256.

    Args:
        path: the state file.
        weights_path: the checkpoint it must belong to (checked by
            fingerprint); None skips that check.

    Returns:
        dict ``epoch``, ``optimizer`` (class name), ``arrays`` ``{"optimizer":
        {key: array}, "random": [array, ...]}``.

    Raises:
        FileNotFoundError: no such file.
        StateFileError: unreadable, a checksum mismatch, or the state of other
            weights than `weights_path`'s; the message names both files.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"training state not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            if _text([f.attrs.get("mrcnn_format", b"")])[0] != FORMAT:
                raise StateFileError(f"{path} is not a training-state file ({FORMAT})")
            out = {"epoch": int(f.attrs["epoch"]),
                   "optimizer": _text([f.attrs["optimizer"]])[0],
                   "fingerprint": _text([f.attrs["weights_fingerprint"]])[0],
                   "arrays": {}}
            for group_name in ("optimizer", "random"):
                g = f[group_name]
                names = _text(g.attrs["names"])
                arrays = {}
                for i, name in enumerate(names):
                    arr = np.asarray(g[str(i)][()])
                    if array_sha256(arr) != _text([g[str(i)].attrs[SHA256_ATTR]])[0]:
                        raise StateFileError(f"{path} is damaged: {group_name} variable "
                                             f"{name!r} does not match its SHA-256")
                    arrays[name] = arr
                out["arrays"][group_name] = arrays
    except (OSError, KeyError) as exc:
        raise StateFileError(f"{path} is not a readable training-state file ({exc}); it may "
                             f"be truncated") from None
    out["arrays"]["random"] = [out["arrays"]["random"][k]
                               for k in sorted(out["arrays"]["random"], key=int)]
    if weights_path is not None:
        found = weights_fingerprint(weights_path)
        if not out["fingerprint"] or found != out["fingerprint"]:
            raise StateFileError(f"{path} is not the training state of {weights_path} (its "
                                 f"weights fingerprint differs): it was saved with other weights")
    return out


def restore_state(optimizer, keras_model, arrays):
    """Assign saved optimizer variables (by key) and random states (by position).

    Args:
        optimizer: the new run's optimizer, built for its trainable variables.
        keras_model: the training model.
        arrays: ``{"optimizer": {key: array}, "random": [array, ...]}`` (from
            `read_state`, or `optimizer_arrays` of the previous optimizer of
            this process with ``"random": None`` to keep the model's own).

    Returns:
        dict ``restored`` (keys assigned), ``fresh`` (optimizer variables the
        state does not hold, e.g. slots of layers the earlier run froze: they
        start from zero) and ``unused`` (saved keys this optimizer has not).
    """
    saved = dict(arrays.get("optimizer") or {})
    variables = list(optimizer.variables)
    keys = _unique(optimizer_key(v) for v in variables)
    report = {"restored": [], "fresh": [], "unused": []}
    for key, var in zip(keys, variables):
        if key.split("/")[-1] in NOT_RESTORED:
            continue
        value = saved.get(key)
        if value is None or tuple(value.shape) != tuple(var.shape):
            report["fresh"].append(key)
            continue
        var.assign(value.astype(var.dtype))
        report["restored"].append(key)
    report["unused"] = sorted(set(saved) - set(keys))
    random_states = arrays.get("random")
    if random_states is not None:
        current = random_variables(keras_model)
        if len(current) == len(random_states) and all(
                tuple(v.shape) == tuple(a.shape) for v, a in zip(current, random_states)):
            for var, value in zip(current, random_states):
                var.assign(value.astype(var.dtype))
        else:
            warnings.warn(f"the saved random-generator states ({len(random_states)}) do not fit "
                          f"this model's ({len(current)}); the ROI sampling continues from a "
                          f"new state", RuntimeWarning, stacklevel=2)
    return report


def load_resume_state(weights_path):
    """The training state saved with checkpoint `weights_path`, or (None, reason).

    Returns:
        ``(state, None)`` from `read_state`, or ``(None, why)`` when there is
        none or it cannot be used (missing, damaged, another branch's).
    """
    path = state_path(weights_path)
    if path is None:
        return None, f"{weights_path} is not named like a run checkpoint"
    if not os.path.exists(path):
        return None, f"no training state {os.path.basename(path)} beside it"
    try:
        return read_state(path, weights_path), None
    except (StateFileError, WeightsFileError) as exc:
        return None, str(exc)
