"""The manifest: every pretrained weight file mrcnn knows by name.

Two sources make it up:

* ``mrcnn/weights/manifest.json`` (shipped inside the package): the Mask
  R-CNN files, e.g. Matterport's COCO model ``"coco"``;
* the backbones: each registered backbone that declares a pretrained file
  (``backbones.register(..., pretrained={"imagenet": {...}})``) adds the
  entry ``"<kind>-<backbone>"``, e.g. ``"imagenet-resnet50"``. A new backbone
  with a pretrained file therefore needs no edit here.

An entry is a dict with ``name``, ``file``, ``description``, ``kind``
("mask_rcnn" or "backbone"), ``backbone``, ``layout``, ``url`` (or None),
``size`` (bytes or None), ``md5`` / ``sha256`` (hex or None), optionally
``alternative_md5`` (other accepted md5s), ``verify`` ("md5" or "size"),
``weighted_layers`` (or None) and ``notes``. ``weights/README.md`` explains
them.

A user can pin the SHA-256 of a file they trust (`record_sha256`): local
copies are then checked against it before loading (`mrcnn.weights.files`).
Hashes are never invented here: ``null`` means nobody recorded one.
"""

import functools
import json
import re
from importlib import resources

import backbones

MANIFEST_NAME = "manifest.json"
# How a kind of pretrained file is called in messages.
KIND_LABELS = {"imagenet": "ImageNet"}
# SHA-256s recorded by the user in this process (`record_sha256`): name -> hex.
_RECORDED_SHA256 = {}


@functools.lru_cache(maxsize=1)
def _manifest_text():
    return resources.files("mrcnn.weights").joinpath(MANIFEST_NAME).read_text(encoding="utf-8")


def _registered_backbones():
    return [backbones.get(name) for name in backbones.available()]


def backbone_entry_name(backbone_name, kind="imagenet"):
    """Manifest name of a backbone's pretrained file: ``"<kind>-<backbone>"`` (lower case)."""
    return f"{kind}-{str(backbone_name).lower()}"


def _backbone_entry(backbone, kind, declared):
    entry = {"name": backbone_entry_name(backbone.name, kind), "kind": "backbone",
             "backbone": backbone.name}
    entry.update(declared)
    return _with_recorded(entry)


def _with_recorded(entry):
    """`entry` with the SHA-256 the user recorded for it (`record_sha256`), if any."""
    if entry["name"] in _RECORDED_SHA256:
        entry["sha256"] = _RECORDED_SHA256[entry["name"]]
    return entry


def backbone_entry(backbone, kind="imagenet"):
    """The manifest entry of a backbone's pretrained file.

    Args:
        backbone: a `backbones.Backbone` (registered or not) or a registered
            name (case-insensitive).
        kind: the kind of weights the backbone declares ("imagenet", ...).

    Returns:
        The entry (a fresh dict), named ``"<kind>-<backbone>"``.

    Raises:
        ValueError: the backbone declares no such file (e.g. "small-cnn", or
            a user callable); the message lists the backbones that do.
    """
    if isinstance(backbone, str):
        found = [b for b in _registered_backbones() if b.name.lower() == backbone.lower()]
        name, declared = backbone, (found[0].pretrained.get(kind) if found else None)
        backbone = found[0] if found else None
    else:
        backbone = backbones.get(backbone)
        name, declared = backbone.name, backbone.pretrained.get(kind)
    if declared is None:
        known = [b.name for b in _registered_backbones() if kind in b.pretrained]
        label = KIND_LABELS.get(kind, repr(kind))
        raise ValueError(
            f"no {label} weights are known for backbone {name!r}; known: {known}. "
            f"Load your own file with mrcnn.weights.load_backbone_weights(keras_model, "
            f"backbone, path), or declare it: backbones.register(..., "
            f"pretrained={{{kind!r}: {{'file': ..., 'url': ...}}}})")
    return _backbone_entry(backbone, kind, declared)


def manifest():
    """The parsed manifest: ``{"format", "description", "files": [entry, ...]}``.

    ``files`` holds the entries of ``manifest.json`` (Mask R-CNN files), then
    one entry per pretrained file declared by a registered backbone (in the
    order of ``backbones.available()``). A fresh copy is returned each call,
    so a backbone registered later is listed too.
    """
    data = json.loads(_manifest_text())
    data["files"] = [_with_recorded(entry) for entry in data["files"]]
    for backbone in _registered_backbones():
        for kind, declared in backbone.pretrained.items():
            data["files"].append(_backbone_entry(backbone, kind, declared))
    return data


def record_sha256(name, sha256):
    """Pin the SHA-256 of the file known as `name`, for this process.

    A local copy found by name is then checked against it (in addition to
    the manifest's size / md5) before it is loaded, so another file put in
    its place is refused. Use it for a file you downloaded once and trust,
    e.g. ``record_sha256("coco", "<64 hex digits>")`` with the value of
    ``python -c "import hashlib; print(hashlib.sha256(open('mask_rcnn_coco.h5',
    'rb').read()).hexdigest())"``. (A backbone declares its own with
    ``pretrained={"imagenet": {..., "sha256": ...}}``.)

    Args:
        name: a manifest name ("coco", "imagenet-resnet50", ...).
        sha256: 64 lower-case hex digits, or None to forget a recorded one.

    Raises:
        ValueError: unknown name, or not a SHA-256.
    """
    get_entry(name)
    if sha256 is None:
        _RECORDED_SHA256.pop(name, None)
        return
    if not (isinstance(sha256, str) and re.fullmatch(r"[0-9a-f]{64}", sha256)):
        raise ValueError(f"sha256 for {name!r} must be 64 lower-case hex digits, got {sha256!r}")
    _RECORDED_SHA256[name] = sha256


def get_entry(name):
    """The manifest entry called `name` (e.g. "coco", "imagenet-efficientnetv2-b0").

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    files = manifest()["files"]
    for entry in files:
        if entry["name"] == name:
            return entry
    known = [e["name"] for e in files]
    raise ValueError(f"no weights called {name!r} in the manifest ({MANIFEST_NAME} and the "
                     f"backbones' pretrained files); known: {known}")
