"""Dataset: the registry of classes and images that feeds training.

Matterport's API: subclass `Dataset`, register classes with `add_class` and
images with `add_image`, call `prepare()`, and override `load_mask()` (and
usually `image_reference()`)::

    class CellDataset(Dataset):
        def load_cells(self, paths):
            self.add_class("cell", 1, "shsy5y")
            for i, path in enumerate(paths):
                self.add_image("cell", image_id=i, path=path)

        def load_mask(self, image_id):
            ...
            return masks, class_ids      # bool [H, W, N], int32 [N]

    train = CellDataset()
    train.load_cells(paths)
    train.prepare()

Several sources (datasets) can be combined: classes are identified by
(source, source class id) and mapped to contiguous internal ids; internal
class 0 is the background ("BG") shared by all sources.
"""

import logging
import ntpath
import os
import re

import numpy as np

from mrcnn.data.image import check_bit_depth, to_rgb_uint8

logger = logging.getLogger(__name__)


def path_inside(folder, relative, what, allow_outside=False):
    """``folder/relative``, refusing a `relative` path that leads outside `folder`.

    A data file named by an id or a file name (a CSV's id, a COCO
    ``file_name``) must not read files elsewhere: `relative` is refused when
    it is absolute (``/etc/x``, ``C:\\x``) or has a ``..`` component. ``/``
    and ``\\`` both separate components, so an id means the same on every OS.
    Symbolic links inside the folder are followed (they are the user's own).

    Args:
        folder: the data folder.
        relative: the path from the data, e.g. ``f"{image_id}.png"``.
        what: how the error names the entry, e.g. ``"train.csv, line 7 (id 'x')"``.
        allow_outside: accept any path (the loaders' ``allow_outside=True``).

    Returns:
        ``os.path.join(folder, relative)``.

    Raises:
        ValueError: the path leads outside (or holds a NUL character); the
            message names `what`, the path, the folder and the option.
    """
    relative = os.fspath(relative)
    if "\0" in relative:
        raise ValueError(f"{what}: {relative!r} contains a NUL character; not a file name")
    absolute = (os.path.isabs(relative) or ntpath.isabs(relative)
                or bool(ntpath.splitdrive(relative)[0]) or relative.startswith(("/", "\\")))
    if not allow_outside and (absolute or ".." in re.split(r"[\\/]", relative)):
        raise ValueError(
            f"{what}: {relative!r} leads outside the data folder {folder!r} (an absolute path "
            f"or a '..' component); ids and file names must stay inside it. Pass "
            f"allow_outside=True to the loader to read such paths on purpose")
    return os.path.join(folder, relative)


class DatasetNotPreparedError(RuntimeError, AttributeError):
    """An attribute built by `Dataset.prepare()` was used before `prepare()`."""


# Attributes that exist only after prepare(); reading them earlier raises
# DatasetNotPreparedError (see Dataset.__getattr__). "image_ids" is a property
# reading _image_ids; when that fails Python falls back to
# __getattr__("image_ids"), so it is listed too.
_PREPARED_ATTRIBUTES = frozenset({
    "num_classes", "class_ids", "class_names", "num_images", "image_ids", "_image_ids",
    "class_from_source_map", "image_from_source_map", "sources",
})


class Dataset:
    """Base class for datasets (Matterport-compatible).

    Attributes (after `prepare()`):
        num_classes: int, classes including the background.
        class_ids: int [num_classes] internal class ids 0..num_classes-1.
        class_names: list of str, one per internal class id.
        num_images: int.
        image_ids: int [num_images] internal image ids 0..num_images-1.
        class_from_source_map: {"source.class_id": internal class id}.
        image_from_source_map: {"source.image_id": internal image id}.
        sources: sorted list of source names ("" is the background's source).
        source_class_ids: {source: [internal class ids]}, background included.
    Always available:
        image_info: list of dicts, one per image ("id", "source", "path", and
            the keyword arguments given to `add_image`).
        class_info: list of dicts ("source", "id", "name"); entry 0 is "BG".
        IMAGE_BIT_DEPTH: how `load_image` converts the files' values to
            0..255 (`mrcnn.data.image.to_rgb_uint8`): None (default) takes
            the dtype's full range (uint16: 0..65535 -> 0..255); an int 8..16
            states the data's bit depth (12: 0..4095 -> 0..255; a value above
            4095 is an error); "percentile" stretches each image between its
            0.5th and 99.5th percentiles. Set it as a class attribute of a
            subclass or with ``Dataset(image_bit_depth=12)``. It lives on the
            Dataset, not the Config, because it describes the files (a
            12-bit camera), not the model, and `load_image` has no Config.

    Args:
        class_map: unused; kept for compatibility with Matterport.
        image_bit_depth: sets IMAGE_BIT_DEPTH for this dataset (None keeps
            the class attribute).
    """

    IMAGE_BIT_DEPTH = None

    def __init__(self, class_map=None, image_bit_depth=None):
        check_bit_depth(type(self).IMAGE_BIT_DEPTH)
        if image_bit_depth is not None:
            self.IMAGE_BIT_DEPTH = check_bit_depth(image_bit_depth)
        self.image_info = []
        self.class_info = [{"source": "", "id": 0, "name": "BG"}]
        self.source_class_ids = {}

    def __getattr__(self, name):
        # Called only when normal lookup fails.
        if name in _PREPARED_ATTRIBUTES:
            raise DatasetNotPreparedError(
                f"{type(self).__name__}.{name} is not available: call prepare() after "
                f"adding classes and images and before using the dataset")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ------------------------------------------------------------------
    # Registration
    def add_class(self, source, class_id, class_name):
        """Register a class of a source. Re-adding a (source, class_id) is ignored.

        Args:
            source: str, name of the dataset the class comes from (no dots).
            class_id: int, the class id within that source (>= 1; 0 is the
                shared background).
            class_name: str, human-readable name.
        """
        if not isinstance(source, str) or "." in source:
            raise ValueError(f"source must be a str without dots, got {source!r}")
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                return
        self.class_info.append({"source": source, "id": class_id, "name": class_name})

    def add_image(self, source, image_id, path, **kwargs):
        """Register an image.

        Args:
            source: str, name of the dataset the image comes from.
            image_id: the image's id within that source (any hashable).
            path: file path (or URL, or None for generated images).
            **kwargs: extra information stored in `image_info` (e.g. the
                annotations `load_mask` needs, height, width).
        """
        info = {"id": image_id, "source": source, "path": path}
        info.update(kwargs)
        self.image_info.append(info)

    def image_reference(self, image_id):
        """A string identifying the image for debugging (its path by default).

        Override to return e.g. a URL or a source-specific id.
        """
        path = self._info(image_id).get("path")
        return "" if path is None else str(path)

    def prepare(self, class_map=None):
        """Build the lookup tables. Call after all add_class/add_image calls.

        Args:
            class_map: unused; kept for compatibility with Matterport.
        """
        def clean_name(name):
            """Keep the text before the first comma ("person, human" -> "person")."""
            return str(name).split(",")[0]

        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [clean_name(c["name"]) for c in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)

        self.class_from_source_map = {
            f"{info['source']}.{info['id']}": int(i)
            for info, i in zip(self.class_info, self.class_ids)}
        self.image_from_source_map = {
            f"{info['source']}.{info['id']}": int(i)
            for info, i in zip(self.image_info, self._image_ids)}

        self.sources = sorted({c["source"] for c in self.class_info})
        self.source_class_ids = {
            source: [i for i, info in enumerate(self.class_info)
                     if i == 0 or info["source"] == source]
            for source in self.sources}

    # ------------------------------------------------------------------
    # Lookups
    @property
    def image_ids(self):
        """int [num_images]: internal image ids (after `prepare()`)."""
        return self._image_ids

    def map_source_class_id(self, source_class_id):
        """Internal class id of a "source.class_id" string, e.g. "coco.12"."""
        try:
            return self.class_from_source_map[source_class_id]
        except KeyError:
            raise ValueError(f"unknown source class {source_class_id!r}; known: "
                             f"{sorted(self.class_from_source_map)}") from None

    def get_source_class_id(self, class_id, source):
        """Class id within `source` of internal class `class_id`."""
        info = self.class_info[class_id]
        if info["source"] != source:
            raise ValueError(f"internal class {class_id} ({info['name']!r}) belongs to "
                             f"source {info['source']!r}, not {source!r}")
        return info["id"]

    def source_image_link(self, image_id):
        """Path or URL of the image (its "path" entry)."""
        return self._info(image_id)["path"]

    def _info(self, image_id):
        n = len(self.image_info)
        if not isinstance(image_id, (int, np.integer)) or not 0 <= image_id < n:
            raise ValueError(f"image_id must be an internal image id in [0, {n}), "
                             f"got {image_id!r}")
        return self.image_info[image_id]

    # ------------------------------------------------------------------
    # Loading
    def load_image(self, image_id):
        """Read the image file as RGB uint8 [H, W, 3].

        Grayscale, gray+alpha, RGBA and 16-bit files are converted with
        `mrcnn.data.image.to_rgb_uint8` (alpha dropped) by the fixed rule
        of `IMAGE_BIT_DEPTH` (default: the dtype's range, uint16 0..65535).

        Raises:
            FileNotFoundError: the file does not exist.
            ValueError: the file cannot be read as an image.
        """
        import skimage.io

        path = self._info(image_id).get("path")
        if path is None or not os.path.isfile(path):
            raise FileNotFoundError(f"image {image_id}: file not found: {path!r}")
        try:
            image = skimage.io.imread(path)
        except Exception as error:  # readers raise many types
            raise ValueError(f"image {image_id}: cannot read {path!r} as an image "
                             f"({type(error).__name__}: {error})") from error
        try:
            return to_rgb_uint8(image, bit_depth=self.IMAGE_BIT_DEPTH)
        except (ValueError, TypeError) as error:
            raise ValueError(f"image {image_id} ({path!r}): {error}") from error

    def load_mask(self, image_id):
        """Instance masks of an image. Subclasses must override this.

        Returns:
            masks: bool [H, W, N], one channel per instance.
            class_ids: int32 [N], internal class ids of the instances.

        The base class does not know the image size: it logs a warning and
        returns empty arrays of shape [0, 0, 0] and [0], as Matterport does.
        """
        logger.warning("%s.load_mask() is the default one and returns no instances; "
                       "override it to load your masks", type(self).__name__)
        return np.empty([0, 0, 0], dtype=bool), np.empty([0], dtype=np.int32)
