"""Backbone registry: names -> feature extractors that feed the FPN.

A backbone is a builder function that takes the (molded) image tensor and
returns the four feature maps C2..C5 the FPN consumes::

    @register("mynet", strides=(4, 8, 16, 32), channels=(64, 128, 256, 512),
              layer_groups={"3+": r"(mynet_s3.*)|(mynet_s4.*)|(mynet_s5.*)",
                            "4+": r"(mynet_s4.*)|(mynet_s5.*)",
                            "5+": r"mynet_s5.*",
                            "all": r"mynet_.*"})
    def mynet(inputs, *, first_stride=2, **options):
        ...
        return [c2, c3, c4, c5]

Contract of a builder:

* ``inputs``: a Keras symbolic tensor ``[batch, height, width, channels]``
  (NHWC, height/width may be ``None``). It is the molded image: RGB minus
  the mean pixel, values roughly in [-128, 128].
* ``first_stride``: 2 (default) or 1. With 1 the very first downsampling of
  the network is skipped, so every feature map is twice as large and the
  strides are halved: (4, 8, 16, 32) -> (2, 4, 8, 16). Useful for small
  objects such as cell nuclei.
* Returns a list ``[C2, C3, C4, C5]`` of symbolic NHWC tensors whose strides
  (input size / feature size) are ``Backbone.strides(first_stride)`` and
  whose channel counts are ``Backbone.channels``.

``pretrained`` declares the backbone's pretrained weight files, so that
``model.load_weights("imagenet")`` and ``weights/download.py`` know them with
no edit outside the backbone's module::

    @register("mynet", ..., pretrained={"imagenet": {
        "file": "mynet_notop.h5",                 # the file name looked for
        "url": "https://example.org/mynet_notop.h5",
        "md5": "0123456789abcdef0123456789abcdef",
        "weighted_layers": 42,
        "description": "MyNet trained on ImageNet-1k, without the classifier"}},
        rename=lambda file_layer: ...)          # optional, see below

Each key ("imagenet", ...) is the kind of weights, and the name the file is
known by is ``<kind>-<backbone name>`` (``imagenet-mynet``). An entry holds
``file`` (required), ``url``, the checks ``md5`` / ``alternative_md5`` /
``sha256`` / ``size`` and ``verify`` ("md5", the default when an md5 is
given, else "size"), ``weighted_layers`` (layers with weights in the model
the file was saved from; a different count is only a warning),
``description``, ``notes`` and ``layout`` (how its layers are named).
``rename`` maps a layer name of a weight file to the backbone's own name (or
None to skip that layer); it is used when a file's names, renamed, match
more of the backbone's layers than as they are (keras.applications' ResNet
files into Matterport's ResNet).

``layer_groups`` maps Matterport's ``train(layers=...)`` modes "3+", "4+",
"5+" and "all" to a regular expression over the backbone's OWN layer names
that selects the layers trained in that mode. The expression is applied
with ``re.fullmatch`` (as Matterport does). The model adds its head
expression (``(mrcnn\\_.*)|(rpn\\_.*)|(fpn\\_.*)``); mode "heads" trains no
backbone layer. Backbones that live in a nested ``keras.Model`` (the
EfficientNetV2 family) match both the nested model's name and its inner
layer names; `mrcnn.training.trainable.set_trainable` is the walk that applies a
pattern.

This module does not import Keras.
"""

import inspect
import re

__all__ = ["Backbone", "register", "unregister", "get", "available"]

DEFAULT_STRIDES = (4, 8, 16, 32)
LAYER_GROUP_MODES = ("3+", "4+", "5+", "all")
# Fields of a pretrained-file declaration; every other field is optional.
PRETRAINED_REQUIRED = ("file",)
PRETRAINED_FIELDS = ("file", "url", "md5", "alternative_md5", "sha256", "size", "verify",
                     "weighted_layers", "description", "notes", "layout")
_HEX = re.compile(r"[0-9a-f]+")

_BACKBONES = {}  # lower-cased name -> Backbone


def _check_int_tuple(value, what, name):
    """Returns `value` as a tuple of 4 positive ints or raises ValueError."""
    try:
        items = tuple(value)
    except TypeError:
        raise ValueError(f"{what} of backbone {name!r} must be 4 positive "
                         f"integers, got {value!r}") from None
    if len(items) != 4 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0
            for v in items):
        raise ValueError(f"{what} of backbone {name!r} must be 4 positive "
                         f"integers, got {value!r}")
    return items


def _check_layer_groups(layer_groups, name):
    """Returns a validated copy of `layer_groups` (dict mode -> regex)."""
    if layer_groups is None:
        return None
    if not isinstance(layer_groups, dict):
        raise TypeError(f"layer_groups of backbone {name!r} must be a dict "
                        f"mapping a mode in {list(LAYER_GROUP_MODES)} to a "
                        f"regex string, got {type(layer_groups).__name__}")
    out = {}
    for mode, pattern in layer_groups.items():
        if mode not in LAYER_GROUP_MODES:
            raise ValueError(f"layer_groups of backbone {name!r} has unknown "
                             f"mode {mode!r}; expected one of "
                             f"{list(LAYER_GROUP_MODES)}")
        if not isinstance(pattern, str):
            raise TypeError(f"layer_groups[{mode!r}] of backbone {name!r} "
                            f"must be a regex string, got {pattern!r}")
        try:
            re.compile(pattern)
        except re.error as err:
            raise ValueError(f"layer_groups[{mode!r}] of backbone {name!r} "
                             f"is not a valid regex: {pattern!r} ({err})"
                             ) from None
        out[mode] = pattern
    return out


def _check_hex(value, digits, field, where):
    if value is not None and not (isinstance(value, str) and len(value) == digits
                                  and _HEX.fullmatch(value)):
        raise ValueError(f"{where}: {field} must be {digits} lower-case hex digits or None, "
                         f"got {value!r}")


def _check_count(value, field, where):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1):
        raise ValueError(f"{where}: {field} must be a positive int or None, got {value!r}")


def _check_pretrained_entry(entry, kind, name):
    """Returns a complete copy of one pretrained-file declaration."""
    where = f"pretrained[{kind!r}] of backbone {name!r}"
    if not isinstance(entry, dict):
        raise TypeError(f"{where} must be a dict with the fields {list(PRETRAINED_FIELDS)}, "
                        f"got {type(entry).__name__}")
    unknown = sorted(set(entry) - set(PRETRAINED_FIELDS))
    if unknown:
        raise ValueError(f"{where} has unknown fields {unknown}; expected some of "
                         f"{list(PRETRAINED_FIELDS)}")
    missing = [f for f in PRETRAINED_REQUIRED if f not in entry]
    if missing:
        raise ValueError(f"{where} lacks {missing}")
    out = {"url": None, "md5": None, "sha256": None, "size": None, "weighted_layers": None,
           "description": f"{kind} weights of backbone {name}", "notes": "", "layout": None}
    out.update(entry)
    file = out["file"]
    if not isinstance(file, str) or not file or "/" in file or "\\" in file:
        raise ValueError(f"{where}: file must be a file name without folders, got {file!r}")
    if out["url"] is not None and not isinstance(out["url"], str):
        raise TypeError(f"{where}: url must be a string or None, got {out['url']!r}")
    _check_hex(out["md5"], 32, "md5", where)
    _check_hex(out["sha256"], 64, "sha256", where)
    if "alternative_md5" in out:
        if isinstance(out["alternative_md5"], str):
            raise TypeError(f"{where}: alternative_md5 must be a list of md5 strings, "
                            f"got {out['alternative_md5']!r}")
        out["alternative_md5"] = list(out["alternative_md5"])
        for value in out["alternative_md5"]:
            _check_hex(value, 32, "alternative_md5", where)
    _check_count(out["size"], "size", where)
    _check_count(out["weighted_layers"], "weighted_layers", where)
    out.setdefault("verify", "md5" if out["md5"] else "size")
    if out["verify"] not in ("md5", "size"):
        raise ValueError(f"{where}: verify must be 'md5' or 'size', got {out['verify']!r}")
    if out["verify"] == "md5" and not out["md5"]:
        raise ValueError(f"{where}: verify='md5' needs an md5")
    return out


def _check_pretrained(pretrained, name):
    """Returns validated copies of `pretrained` (dict kind -> file declaration)."""
    if pretrained is None:
        return {}
    if not isinstance(pretrained, dict):
        raise TypeError(f"pretrained of backbone {name!r} must be a dict mapping a kind "
                        f"such as 'imagenet' to a file declaration, got "
                        f"{type(pretrained).__name__}")
    out = {}
    for kind, entry in pretrained.items():
        if not isinstance(kind, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.]*", kind):
            raise ValueError(f"pretrained of backbone {name!r}: a kind must be a lower-case "
                             f"word such as 'imagenet', got {kind!r}")
        out[kind] = _check_pretrained_entry(entry, kind, name)
    return out


def _accepts_keyword(fn, keyword):
    """True if `fn` can be called with `keyword=` (named or **kwargs)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return True
    return any(p.kind == p.VAR_KEYWORD
               or (p.name == keyword and p.kind in (p.KEYWORD_ONLY,
                                                    p.POSITIONAL_OR_KEYWORD))
               for p in params)


class Backbone:
    """A registered (or wrapped) backbone builder and what it declares.

    Attributes:
        name: the registered name (spelling as given to `register`).
        builder: the function ``fn(inputs, *, first_stride=2, **options)``.
        channels: tuple of 4 ints, channels of C2..C5, or None if unknown
            (a user callable: then the Config must give
            COMPUTE_BACKBONE_SHAPE).
        layer_groups: dict mode -> regex over the backbone's own layer names
            (modes "3+", "4+", "5+", "all"), or None if not declared.
        pretrained: dict kind ("imagenet", ...) -> pretrained-file
            declaration with every field filled in (see the module
            docstring); {} if none.
        rename: ``fn(file_layer_name) -> own layer name or None`` for weight
            files named another way, or None.
    """

    def __init__(self, name, builder, *, strides=DEFAULT_STRIDES,
                 channels=None, layer_groups=None, pretrained=None, rename=None):
        if not isinstance(name, str) or not name:
            raise ValueError(f"backbone name must be a non-empty string, "
                             f"got {name!r}")
        if not callable(builder):
            raise TypeError(f"builder of backbone {name!r} must be callable, "
                            f"got {type(builder).__name__}")
        self.name = name
        self.builder = builder
        self._strides = _check_int_tuple(strides, "strides", name)
        if list(self._strides) != sorted(set(self._strides)):
            raise ValueError(f"strides of backbone {name!r} must be strictly "
                             f"increasing, got {strides!r}")
        if any(s % 2 for s in self._strides):
            raise ValueError(f"strides of backbone {name!r} must be even (so "
                             f"first_stride=1 can halve them), got "
                             f"{strides!r}")
        self.channels = (None if channels is None
                         else _check_int_tuple(channels, "channels", name))
        self.layer_groups = _check_layer_groups(layer_groups, name)
        self.pretrained = _check_pretrained(pretrained, name)
        if rename is not None and not callable(rename):
            raise TypeError(f"rename of backbone {name!r} must be callable or None, "
                            f"got {type(rename).__name__}")
        self.rename = rename

    def strides(self, first_stride=2):
        """Strides of C2..C5 in input pixels.

        Args:
            first_stride: 2 (default) or 1; 1 halves every stride.

        Returns:
            Tuple of 4 ints, e.g. (4, 8, 16, 32) or (2, 4, 8, 16).
        """
        _check_first_stride(first_stride)
        return tuple(s * first_stride // 2 for s in self._strides)

    def accepts(self, option):
        """True if the builder takes the keyword `option` (e.g. "zero_init_residual")."""
        return _accepts_keyword(self.builder, option)

    def build(self, inputs, first_stride=2, **options):
        """Builds the backbone on `inputs` and returns [C2, C3, C4, C5].

        Args:
            inputs: symbolic image tensor [batch, height, width, channels].
            first_stride: 2 (default) or 1 (halves all strides).
            **options: builder-specific options (e.g. ``weights=`` for
                EfficientNetV2).

        Returns:
            List of 4 symbolic tensors [batch, H/s, W/s, channels] for the
            strides s in ``self.strides(first_stride)``. A builder that
            returns Matterport's five maps [C1, ..., C5] has C1 dropped.
        """
        _check_first_stride(first_stride)
        refused = sorted(k for k in options if not self.accepts(k))
        if refused:
            raise ValueError(f"backbone {self.name!r} does not accept the option(s) "
                             f"{', '.join(refused)} (its builder has no such keyword)")
        if _accepts_keyword(self.builder, "first_stride"):
            outputs = self.builder(inputs, first_stride=first_stride,
                                   **options)
        elif first_stride == 2:
            outputs = self.builder(inputs, **options)
        else:
            raise ValueError(f"backbone {self.name!r} does not accept a "
                             f"first_stride argument, so first_stride="
                             f"{first_stride!r} cannot be honored")
        outputs = list(outputs)
        if len(outputs) == 5:  # Matterport's resnet_graph: [C1, ..., C5]
            outputs = outputs[1:]
        if len(outputs) != 4:
            raise ValueError(f"backbone {self.name!r} must return 4 feature "
                             f"maps [C2, C3, C4, C5], got {len(outputs)}")
        return outputs

    def layer_regex(self, mode):
        """Regex over this backbone's layer names trained in `mode`.

        Args:
            mode: "heads", "3+", "4+", "5+" or "all".

        Returns:
            A regex string (for ``re.fullmatch``), or None for "heads" (no
            backbone layer is trained). A backbone without layer_groups
            answers ".*" for "all".
        """
        if mode == "heads":
            return None
        groups = self.layer_groups or {}
        if mode in groups:
            return groups[mode]
        if mode == "all":
            return ".*"
        modes = ["heads"] + sorted(set(groups) | {"all"})
        raise ValueError(f"backbone {self.name!r} has no layer group "
                         f"{mode!r}; available: {modes}")

    def __repr__(self):
        return (f"Backbone(name={self.name!r}, strides={self._strides}, "
                f"channels={self.channels})")


def _check_first_stride(first_stride):
    if isinstance(first_stride, bool) or first_stride not in (1, 2):
        raise ValueError(f"first_stride must be 1 or 2, got {first_stride!r}")


def register(name, *, strides=DEFAULT_STRIDES, channels=None,
             layer_groups=None, pretrained=None, rename=None):
    """Decorator that registers a backbone builder under `name`.

    Args:
        name: the name users put in ``Config.BACKBONE`` (matched
            case-insensitively).
        strides: strides of C2..C5 with the default first_stride=2.
        channels: channels of C2..C5 (4 ints), or None if unknown.
        layer_groups: dict mode ("3+", "4+", "5+", "all") -> regex over the
            backbone's own layer names, or None.
        pretrained: dict kind ("imagenet", ...) -> pretrained-file
            declaration (see the module docstring), or None.
        rename: ``fn(file_layer_name) -> own layer name or None``, applied
            to weight files whose layers are named another way, or None.

    Returns:
        A decorator that registers the builder and returns it unchanged.

    Raises:
        ValueError: if `name` is already registered (case-insensitively).
    """
    def decorator(builder):
        backbone = Backbone(name, builder, strides=strides, channels=channels,
                            layer_groups=layer_groups, pretrained=pretrained,
                            rename=rename)
        key = name.lower()
        if key in _BACKBONES:
            raise ValueError(f"backbone {name!r} is already registered "
                             f"(as {_BACKBONES[key].name!r})")
        _BACKBONES[key] = backbone
        return builder
    return decorator


def unregister(name):
    """Remove a registered backbone (e.g. before re-running a notebook cell
    that registers it again).

    Raises:
        ValueError: unknown name (the message lists `available()`).
    """
    key = name.lower()
    if key not in _BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; available: {available()}")
    del _BACKBONES[key]


def available():
    """Sorted list of registered backbone names."""
    return sorted(b.name for b in _BACKBONES.values())


def get(name_or_callable):
    """Looks up a backbone.

    Args:
        name_or_callable: a registered name (case-insensitive), a `Backbone`,
            or a callable ``fn(inputs, **options) -> [C2, C3, C4, C5]``
            (wrapped as an anonymous backbone with strides (4, 8, 16, 32) and
            unknown channels; the Config must then set
            COMPUTE_BACKBONE_SHAPE, as in Matterport).

    Returns:
        A `Backbone`.

    Raises:
        ValueError: unknown name (the message lists `available()`).
        TypeError: anything else.
    """
    if isinstance(name_or_callable, Backbone):
        return name_or_callable
    if isinstance(name_or_callable, str):
        backbone = _BACKBONES.get(name_or_callable.lower())
        if backbone is None:
            raise ValueError(f"unknown backbone {name_or_callable!r}; "
                             f"available: {available()}")
        return backbone
    if callable(name_or_callable):
        name = getattr(name_or_callable, "__name__", None) or "custom"
        return Backbone(name, name_or_callable)
    raise TypeError(f"backbone must be a registered name, a Backbone or a "
                    f"callable, got {type(name_or_callable).__name__}")
