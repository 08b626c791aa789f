"""Pretrained weights: known files, where to find them, download, load by name.

The known files (Matterport's COCO model, ImageNet weights of every built-in
backbone) are listed in ``mrcnn/weights/manifest.json`` (shipped inside the
package; ``weights/README.md`` explains it). A name resolves to a local
file first; the network is used only when asked for::

    model.load_weights("coco", exclude="heads")   # MaskRCNN.load_weights -> load_named_weights
    model.load_weights("imagenet")                # the backbone's ImageNet file
    model.load_weights("last")                    # model.find_last()
    model.load_weights("/path/to/file.h5", by_name=True)

Search order for a named file (e.g. ``mask_rcnn_coco.h5``):

1. each folder in ``$MRCNN_WEIGHTS_DIR`` (several may be joined with
   ``os.pathsep``; on Kaggle, an attached dataset under ``/kaggle/input``);
2. the Keras cache, ``$KERAS_HOME/models`` or ``~/.keras/models`` (where
   ``keras.applications`` keeps the ImageNet files it downloaded);
3. the current directory (where Matterport's samples kept ``mask_rcnn_coco.h5``);
4. only with ``allow_download=True``: a download to the first writable
   folder of ``$MRCNN_WEIGHTS_DIR``, else the Keras cache (10 s socket
   timeout, proxies from the environment, written atomically, checked
   against the manifest).

When the file is missing the error names the file, every folder searched
and the ways to provide it, without touching the network.

This module imports Keras only inside the loading functions.
"""

import functools
import hashlib
import json
import logging
import os
import re
import tempfile
import urllib.request
from importlib import resources

log = logging.getLogger(__name__)

WEIGHTS_DIR_ENV = "MRCNN_WEIGHTS_DIR"
MANIFEST_NAME = "manifest.json"
COCO_WEIGHTS_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"
DOWNLOAD_TIMEOUT_S = 10
NAMED_SPECS = ("coco", "imagenet", "last")
# Layer-name prefixes of the parts that are not the backbone.
HEAD_PREFIXES = ("fpn_", "rpn_", "mrcnn_")


# ------------------------------------------------------------------ manifest
@functools.lru_cache(maxsize=1)
def _manifest_text():
    return resources.files("mrcnn.weights").joinpath(MANIFEST_NAME).read_text(encoding="utf-8")


def manifest():
    """The parsed manifest: ``{"format", "description", "files": [entry, ...]}``.

    Each entry has ``name``, ``file``, ``description``, ``kind`` ("mask_rcnn"
    or "backbone"), ``backbone``, ``layout``, ``url``, ``size`` (bytes or
    None), ``md5``/``sha256`` (hex or None), ``verify`` ("md5" or "size"),
    ``weighted_layers`` and ``notes``. A fresh copy is returned each call.
    """
    return json.loads(_manifest_text())


def get_entry(name):
    """The manifest entry called `name` (e.g. "coco", "imagenet-efficientnetv2-b0").

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    for entry in manifest()["files"]:
        if entry["name"] == name:
            return entry
    known = [e["name"] for e in manifest()["files"]]
    raise ValueError(f"no weights called {name!r} in {MANIFEST_NAME}; known: {known}")


def imagenet_entry_name(backbone_name):
    """Manifest name of a backbone's ImageNet file: "imagenet-<backbone>".

    Raises:
        ValueError: no ImageNet file is known for this backbone (e.g.
            "small-cnn" or a user callable).
    """
    name = f"imagenet-{str(backbone_name).lower()}"
    known = [e["backbone"] for e in manifest()["files"] if e["name"].startswith("imagenet-")]
    if name not in {f"imagenet-{b}" for b in known}:
        raise ValueError(
            f"no ImageNet weights are known for backbone {backbone_name!r}; known: {known}. "
            f"Load your own file with mrcnn.weights.loading.load_backbone_weights(model, path)")
    return name


# ------------------------------------------------------------------ locating
def keras_cache_dir():
    """Folder where keras.applications keeps downloaded weights."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


def search_dirs():
    """[(label, folder)] searched for named weight files, in order."""
    dirs = [(f"${WEIGHTS_DIR_ENV}", d)
            for d in os.environ.get(WEIGHTS_DIR_ENV, "").split(os.pathsep) if d]
    dirs.append(("Keras cache", keras_cache_dir()))
    dirs.append(("current directory", os.getcwd()))
    return dirs


def find_weights(name):
    """Path of the local copy of manifest entry `name`, or None (no network)."""
    filename = get_entry(name)["file"]
    for _, folder in search_dirs():
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            return path
    return None


def default_download_dir():
    """First writable folder of ``$MRCNN_WEIGHTS_DIR``, else the Keras cache."""
    for d in os.environ.get(WEIGHTS_DIR_ENV, "").split(os.pathsep):
        if d and os.path.isdir(d) and os.access(d, os.W_OK):
            return d
    return keras_cache_dir()


def missing_weights_message(name, download_error=None):
    """The error text for a named file that is not found: where we looked, how to fix."""
    entry = get_entry(name)
    f = entry["file"]
    lines = [f"pretrained weights {name!r} not found: no file {f} ({entry['description']})",
             "Looked in:"]
    if not os.environ.get(WEIGHTS_DIR_ENV):
        lines.append(f"  - ${WEIGHTS_DIR_ENV}: not set")
    lines += [f"  - {label}: {folder}" for label, folder in search_dirs()]
    size = f", {entry['size']:,} bytes" if entry.get("size") else ""
    if download_error is not None:
        lines.append(f"Downloading {entry['url']} failed: {download_error}")
    else:
        lines.append("Nothing was downloaded (allow_download=False).")
    lines += [
        "To provide it, do one of:",
        f"  - download {entry['url']}{size} where a network exists and put {f} in a folder "
        f"named by ${WEIGHTS_DIR_ENV} (e.g. on Kaggle attach a dataset holding it and set "
        f"os.environ['{WEIGHTS_DIR_ENV}'] = '/kaggle/input/<dataset>'), or in {keras_cache_dir()};",
        f"  - run `python weights/download.py {name}` (from the repository) where a network exists;",
        f"  - allow the download: model.load_weights(..., allow_download=True) "
        f"(saves to {default_download_dir()});",
        "  - or pass the file's path instead of the name.",
    ]
    return "\n".join(lines)


def locate_weights(name, allow_download=False, directory=None, timeout=DOWNLOAD_TIMEOUT_S,
                   verbose=1):
    """Path of manifest entry `name`: a local copy, else (if allowed) a download.

    Args:
        name: manifest name ("coco", "imagenet-resnet50", ...).
        allow_download: download when no local copy exists.
        directory: where to download to (default `default_download_dir()`).
        timeout: socket timeout of the download in seconds.

    Raises:
        FileNotFoundError: not found (and not downloaded); the message says
            where it looked and how to provide the file.
    """
    path = find_weights(name)
    if path is not None:
        return path
    if not allow_download:
        raise FileNotFoundError(missing_weights_message(name))
    try:
        return download_weights(name, directory=directory, timeout=timeout, verbose=verbose)
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(missing_weights_message(name, download_error=exc)) from exc


# --------------------------------------------------------------- downloading
def file_digests(path, chunk=1 << 22):
    """(size in bytes, md5 hex, sha256 hex) of a file."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            md5.update(block)
            sha.update(block)
            size += len(block)
    return size, md5.hexdigest(), sha.hexdigest()


def _count_weighted_layers(path):
    import h5py
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f and "layer_names" not in f.attrs else f
        names = root.attrs.get("layer_names")
        if names is None:
            return None
        names = [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in names]
        return sum(1 for n in names if len(root[n].attrs.get("weight_names", [])))


def verify_file(path, entry, digests=None):
    """Check a weights file against its manifest entry.

    Args:
        path: the file.
        entry: a manifest entry (dict) or its name.
        digests: (size, md5, sha256) if already computed.

    Returns:
        dict: ``ok`` (bool: size/hash checks passed), ``size``, ``md5``,
        ``sha256``, ``problems`` (why not ok) and ``warnings`` (e.g. a layer
        count that differs from ``weighted_layers``, which is not verified
        against the published files).
    """
    if isinstance(entry, str):
        entry = get_entry(entry)
    size, md5, sha = digests or file_digests(path)
    problems, warnings = [], []
    if entry.get("sha256") and sha != entry["sha256"]:
        problems.append(f"sha256 {sha}, expected {entry['sha256']}")
    if entry["verify"] == "md5":
        allowed = [entry["md5"]] + list(entry.get("alternative_md5") or [])
        if md5 not in allowed:
            problems.append(f"md5 {md5}, expected {' or '.join(allowed)}")
    elif entry["verify"] == "size":
        if entry.get("size") and size != entry["size"]:
            problems.append(f"{size:,} bytes, expected {entry['size']:,}")
    else:
        raise ValueError(f"manifest entry {entry['name']!r}: verify must be 'md5' or 'size', "
                         f"got {entry['verify']!r}")
    try:
        count = _count_weighted_layers(path)
    except OSError as exc:
        problems.append(f"not a readable HDF5 file ({exc})")
        count = None
    if count is not None and entry.get("weighted_layers") and count != entry["weighted_layers"]:
        warnings.append(f"{count} layers hold weights, the manifest expects "
                        f"{entry['weighted_layers']}")
    return {"ok": not problems, "size": size, "md5": md5, "sha256": sha,
            "problems": problems, "warnings": warnings}


def _fetch(url, target, timeout, verbose):
    """Download `url` to `target` atomically; returns (size, md5, sha256)."""
    folder = os.path.dirname(os.path.abspath(target))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".download-", suffix=".part")
    md5, sha, size = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0)
            next_report = 0.1
            for block in iter(lambda: resp.read(1 << 20), b""):
                out.write(block)
                md5.update(block)
                sha.update(block)
                size += len(block)
                if verbose and total and size / total >= next_report:
                    print(f"  {size / 2**20:.0f} / {total / 2**20:.0f} MiB")
                    next_report += 0.1
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return size, md5.hexdigest(), sha.hexdigest()


def download_weights(name, directory=None, timeout=DOWNLOAD_TIMEOUT_S, verbose=1, url=None):
    """Download manifest entry `name` and check it; return the file's path.

    Args:
        name: manifest name ("coco", "imagenet-efficientnetv2-b0", ...).
        directory: target folder (default `default_download_dir()`).
        timeout: socket timeout in seconds (connect and each read).
        url: another source for the same file (a mirror, or ``file://``).

    Raises:
        OSError: the download failed (no network, proxy refused, timeout).
        ValueError: the downloaded file fails the manifest's size/hash check
            (it is deleted).
    """
    entry = get_entry(name)
    url = url or entry["url"]
    directory = directory or default_download_dir()
    target = os.path.join(directory, entry["file"])
    if verbose:
        print(f"Downloading {url} to {target} ...")
    part = target + ".unverified"
    try:
        digests = _fetch(url, part, timeout, verbose)
    except OSError as exc:
        raise OSError(f"could not download {url} ({exc}). Without network access, get "
                      f"{entry['file']} elsewhere and put it in {directory} or in a folder "
                      f"named by ${WEIGHTS_DIR_ENV}") from exc
    check = verify_file(part, entry, digests=digests)
    if not check["ok"]:
        os.remove(part)
        raise ValueError(f"downloaded {url} but it does not match {MANIFEST_NAME} "
                         f"({'; '.join(check['problems'])}); the file was deleted")
    os.replace(part, target)
    for warning in check["warnings"]:
        log.warning("%s: %s", target, warning)
    if verbose:
        print(f"... done ({digests[0]:,} bytes, md5 {digests[1]})")
    return target


def download_trained_weights(coco_model_path, verbose=1, url=COCO_WEIGHTS_URL,
                             timeout=DOWNLOAD_TIMEOUT_S):
    """Download Matterport's COCO weights to ``coco_model_path`` (Matterport's API).

    Written atomically and checked against the manifest's size.

    Raises:
        OSError: the download failed; the message says where to put a
            manually downloaded copy.
        ValueError: the file does not have the expected size.
    """
    target = os.path.abspath(os.fspath(coco_model_path))
    if verbose:
        print(f"Downloading pretrained model to {target} ...")
    try:
        digests = _fetch(url, target + ".unverified", timeout, verbose=0)
    except OSError as exc:
        raise OSError(
            f"could not download {url} ({exc}). Without network access, download the "
            f"file elsewhere and copy it to {target}, or put it in a folder named by "
            f"the {WEIGHTS_DIR_ENV} environment variable.") from exc
    check = verify_file(target + ".unverified", "coco", digests=digests)
    if not check["ok"]:
        os.remove(target + ".unverified")
        raise ValueError(f"downloaded {url} but {'; '.join(check['problems'])}; deleted")
    os.replace(target + ".unverified", target)
    if verbose:
        print("... done downloading pretrained model!")
    return target


# ------------------------------------------------------------------- loading
def keras_resnet_to_matterport(layer_name):
    """Matterport's name for a keras.applications ResNet layer, or None.

    ``conv1_conv`` -> ``conv1``, ``conv1_bn`` -> ``bn_conv1``,
    ``conv{s}_block{b}_{i}_conv`` -> ``res{s}{letter b}_branch{1|2a|2b|2c}``
    (i = 0, 1, 2, 3) and ``..._bn`` -> ``bn{s}{letter}_branch...``.
    """
    if layer_name == "conv1_conv":
        return "conv1"
    if layer_name == "conv1_bn":
        return "bn_conv1"
    m = re.fullmatch(r"conv([2-5])_block(\d+)_([0-3])_(conv|bn)", layer_name)
    if not m:
        return None
    stage, block, i, kind = m.groups()
    branch = {"0": "1", "1": "2a", "2": "2b", "3": "2c"}[i]
    letter = chr(ord("a") + int(block) - 1)
    return f"{'res' if kind == 'conv' else 'bn'}{stage}{letter}_branch{branch}"


def _file_layer_names(path):
    import h5py
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f and "layer_names" not in f.attrs else f
        names = root.attrs.get("layer_names", [])
        return [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in names]


def _renamed_copy(src, dst, rename):
    """Copy a Keras-2 layout HDF5 file renaming its layer groups with `rename`."""
    import h5py
    import numpy as np
    with h5py.File(src, "r") as fin, h5py.File(dst, "w") as fout:
        root = fin["model_weights"] if "model_weights" in fin and "layer_names" not in fin.attrs else fin
        kept = []
        for name in _file_layer_names(src):
            new = rename(name)
            if new is None or not len(root[name].attrs.get("weight_names", [])):
                continue
            fin.copy(root[name], fout, name=new)
            kept.append(new.encode("utf8"))
        fout.attrs["layer_names"] = np.array(kept)


def _leaf_weight_layers(layer):
    if hasattr(layer, "layers") and isinstance(layer.layers, (list, tuple)) and layer.layers:
        return [leaf for sub in layer.layers for leaf in _leaf_weight_layers(sub)]
    return [layer] if layer.weights else []


def backbone_weight_layers(mrcnn_model):
    """Names of the backbone's layers that hold weights (nested models entered)."""
    names = []
    for layer in mrcnn_model.keras_model.layers:
        if layer.weights and not layer.name.startswith(HEAD_PREFIXES):
            names += [leaf.name for leaf in _leaf_weight_layers(layer)]
    return names


def _backbone_submodel(mrcnn_model):
    """The nested backbone model (EfficientNetV2), or None for inline backbones."""
    import keras
    for layer in mrcnn_model.keras_model.layers:
        if layer.name == mrcnn_model.backbone.name and isinstance(layer, keras.Model):
            return layer
    return None


def load_backbone_weights(mrcnn_model, path=None, allow_download=False, exclude=None):
    """Load ImageNet (or other pretrained) weights into the backbone only.

    Args:
        mrcnn_model: a MaskRCNN.
        path: a weights file; None looks up the backbone's ImageNet file in
            the manifest (see `locate_weights`). Accepted files:
            Keras-2 layout ``.h5`` with the backbone's layer names (Matterport's
            ResNet names, keras.applications' EfficientNetV2 names), a
            keras.applications ResNet file (its names are translated), or,
            for a nested backbone (EfficientNetV2), a Keras 3 ``.weights.h5``
            saved from that sub-model or a legacy ``.h5`` of the same
            architecture with other names (loaded by layer order).
        allow_download: download the ImageNet file if it is not found locally.
        exclude: layer names / regex not to load (as in `weights_io.load_weights`).

    Returns:
        the `weights_io.load_weights` report plus ``path``, ``method`` ("by
        name", "by name (renamed)", "by order" or "structure") and
        ``backbone_not_loaded`` (backbone layers left as they were).

    Raises:
        FileNotFoundError: no file (message says where to put it).
        ValueError: the file holds none of the backbone's layers.
    """
    from mrcnn.weights import h5 as weights_io

    name = mrcnn_model.backbone.name
    if path is None:
        path = locate_weights(imagenet_entry_name(name), allow_download=allow_download)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"backbone weights file not found: {path}")
    wanted = backbone_weight_layers(mrcnn_model)
    sub = _backbone_submodel(mrcnn_model)

    if weights_io.is_keras3_weights_file(path):
        if sub is None:
            raise ValueError(f"{path} is a Keras 3 '.weights.h5' file (stored by structure); "
                             f"backbone {name!r} is built inline, so such a file cannot be "
                             f"matched to it. Use a by-name '.h5' file")
        _structural_load(sub, path, name)
        report = {"loaded": list(wanted), "excluded": [], "missing": [],
                  "shape_mismatch": [], "method": "structure"}
    else:
        file_names = _file_layer_names(path)
        if "conv1_conv" in file_names and "res2a_branch2a" not in file_names:
            with tempfile.TemporaryDirectory() as tmp:
                renamed = os.path.join(tmp, "renamed.h5")
                _renamed_copy(path, renamed, keras_resnet_to_matterport)
                report = weights_io.load_weights(mrcnn_model.keras_model, renamed,
                                                 by_name=True, exclude=exclude)
            report["method"] = "by name (renamed)"
        else:
            report = weights_io.load_weights(mrcnn_model.keras_model, path, by_name=True,
                                             exclude=exclude)
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


def _structural_load(sub, path, name):
    try:
        sub.load_weights(path)
    except ValueError as exc:
        raise ValueError(
            f"{path} does not match backbone {name!r}: no layer names in common and "
            f"loading by layer order failed ({exc}). Expected a file saved from "
            f"keras.applications with include_top=False or from the sub-model "
            f"keras_model.get_layer({name!r})") from exc


def load_named_weights(mrcnn_model, spec, by_name=False, exclude=None, allow_download=False):
    """Load weights given as "coco", "imagenet", "last" or a path (Matterport's --weights).

    Args:
        mrcnn_model: a MaskRCNN.
        spec: "coco" (Matterport's COCO model, loaded by name: layers whose
            shapes differ, e.g. another backbone's FPN inputs, are skipped and
            reported), "imagenet" (the backbone's ImageNet file, see
            `load_backbone_weights`), "last" (``mrcnn_model.find_last()``) or
            a file path. Names are case-insensitive; a file literally called
            "coco" must be given as "./coco".
        by_name: for "last" and paths (see `weights_io.load_weights`);
            "coco" and "imagenet" always load by name.
        exclude: layer names, a regex, or "heads" (the NUM_CLASSES-specific
            layers: use it for COCO weights with another NUM_CLASSES).
        allow_download: download a named file that is not found locally.

    Returns:
        the report of `weights_io.load_weights` (``loaded``, ``excluded``,
        ``missing``, ``shape_mismatch``) plus ``path``, the file loaded.

    Raises:
        FileNotFoundError: the file is missing (for names: where it was
            looked for and how to provide it).
        ValueError: nothing in the file matches the model.
    """
    from mrcnn.weights import h5 as weights_io

    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"weights must be 'coco', 'imagenet', 'last' or a file path, "
                        f"got {spec!r}")
    key = spec.lower() if isinstance(spec, str) else None
    if key == "imagenet":
        return load_backbone_weights(mrcnn_model, allow_download=allow_download,
                                     exclude=exclude)
    if key == "coco":
        path = locate_weights("coco", allow_download=allow_download)
        report = weights_io.load_weights(mrcnn_model.keras_model, path, by_name=True,
                                         exclude=exclude)
        if not report["loaded"]:
            raise ValueError(f"{path}: no layer of the model was found in the file; expected "
                             f"Matterport's COCO weights (layer names like fpn_c5p5, "
                             f"rpn_model, mrcnn_class_logits)")
    else:
        path = mrcnn_model.find_last() if key == "last" else os.fspath(spec)
        report = weights_io.load_weights(mrcnn_model.keras_model, path, by_name=by_name,
                                         exclude=exclude)
    report["path"] = path
    return report
