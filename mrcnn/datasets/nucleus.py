"""2018 Data Science Bowl nuclei (Kaggle "stage1_train" folder layout).

One folder per image, one binary PNG per nucleus::

    <root>/<id>/images/<id>.png     the image (often RGBA; converted to RGB)
    <root>/<id>/masks/<any>.png     one mask per nucleus (nonzero = nucleus)

Test folders ("stage1_test") have no `masks/` folder; their `load_mask`
returns no instances.

    ds = NucleusDataset()
    ds.load_nucleus("/data/stage1_train")
    ds.prepare()                         # classes: BG, nucleus
    masks, class_ids = ds.load_mask(0)   # bool [H, W, N], int32 [N]
"""

import logging
import os

import numpy as np

from mrcnn.data.image import read_image_size
from mrcnn.dataset import Dataset, path_inside

logger = logging.getLogger(__name__)

SOURCE = "nucleus"


class NucleusDataset(Dataset):
    """DSB 2018 nucleus folders as a `Dataset` (one class, "nucleus").

    `image_info` entries carry "mask_dir" (None when the image has no
    `masks/` folder).

    `cache_key` stamps the image file and every mask file, so the sample
    cache (`mrcnn.data.cache`) misses after a mask is edited, added or removed.
    """

    def load_nucleus(self, root, image_ids=None, allow_outside=False):
        """Register the image folders under `root`.

        Args:
            root: folder holding one sub-folder per image (e.g. stage1_train).
            image_ids: optional folder names to load, in the order given;
                every non-hidden sub-folder, sorted by name, by default.
            allow_outside: accept ids that lead outside root (an absolute
                path or a ``..`` component, e.g. ``../other/abc``); refused by
                default.

        Raises:
            FileNotFoundError: root is missing, or an image folder has no
                `images/<id>.png`.
            ValueError: an id leads outside root (see allow_outside).
        """
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"nucleus data folder not found: {root!r}")
        self.add_class(SOURCE, 1, "nucleus")
        if image_ids is None:
            image_ids = sorted(name for name in os.listdir(root)
                               if not name.startswith(".")
                               and os.path.isdir(os.path.join(root, name)))
        for image_id in image_ids:
            image_id = str(image_id)
            folder = path_inside(root, image_id, f"nucleus image {image_id!r}", allow_outside)
            path = os.path.join(folder, "images", f"{os.path.basename(image_id)}.png")
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"nucleus image {image_id!r}: {path!r} not found; expected the layout "
                    f"<root>/<id>/images/<id>.png with masks in <root>/<id>/masks/*.png")
            mask_dir = os.path.join(folder, "masks")
            self.add_image(SOURCE, image_id=image_id, path=path,
                           mask_dir=mask_dir if os.path.isdir(mask_dir) else None)

    def load_mask(self, image_id):
        """Read the image's mask PNGs (sorted by file name).

        Each file is one nucleus: its nonzero pixels (any colour channel;
        alpha is ignored) form the mask. Blank files are skipped with a
        warning.

        Returns:
            masks: bool [H, W, N]; [H, W, 0] for a folder without masks.
            class_ids: int32 [N], the internal id of "nucleus". Call
                `prepare()` first.

        Raises:
            ValueError: a mask file is unreadable or its size differs from
                the image's; the message names the file.
        """
        import skimage.io

        info = self._info(image_id)
        height, width = read_image_size(info["path"], f"nucleus image {info['id']!r}")
        mask_dir = info.get("mask_dir")
        names = [] if mask_dir is None else _mask_names(mask_dir)
        masks = np.zeros((height, width, len(names)), bool)
        keep = np.ones(len(names), bool)
        for i, name in enumerate(names):
            path = os.path.join(mask_dir, name)
            try:
                mask = skimage.io.imread(path)
            except Exception as error:  # image readers raise many types
                raise ValueError(f"nucleus image {info['id']!r}: cannot read mask {path!r} "
                                 f"({type(error).__name__}: {error})") from error
            if mask.ndim == 3:
                mask = mask[..., :3] if mask.shape[-1] in (3, 4) else mask[..., :1]
                mask = mask.max(axis=-1)
            if mask.shape != (height, width):
                raise ValueError(f"nucleus image {info['id']!r}: mask {path!r} is "
                                 f"{'x'.join(map(str, mask.shape))} but the image is "
                                 f"{height}x{width}")
            masks[..., i] = mask > 0
            if not masks[..., i].any():
                logger.warning("nucleus image %r: mask %s is blank; skipped", info["id"], path)
                keep[i] = False
        masks = masks[..., keep]
        class_id = self.map_source_class_id(f"{SOURCE}.1")
        return masks, np.full(masks.shape[-1], class_id, np.int32)

    def cache_key(self, image_id):
        """Identity of the image's files for the sample cache.

        Used by `mrcnn.data.cache.keys.sample_key`: any change of the key makes the
        cached sample of this image a miss.

        Args:
            image_id: internal image id.

        Returns:
            tuple ("nucleus-files", image_info entry, image stamp, mask
            stamps): a stamp is (size in bytes, mtime in ns), or None for a
            file that cannot be stat'ed; the mask stamps are a tuple of
            (file name, stamp) for every mask PNG that `load_mask` reads, in
            its order, or None when the `masks/` folder cannot be listed
            (`load_mask` then reports the problem). Touching, editing, adding
            or removing a mask file changes the key.
        """
        info = self._info(image_id)
        mask_dir = info.get("mask_dir")
        masks = ()
        if mask_dir is not None:
            try:
                names = _mask_names(mask_dir)
            except OSError:
                masks = None
            else:
                masks = tuple((name, _stamp(os.path.join(mask_dir, name))) for name in names)
        return ("nucleus-files", info, _stamp(info["path"]), masks)

    def image_reference(self, image_id):
        """"<id> (<path>)"."""
        info = self._info(image_id)
        return f"{info['id']} ({info['path']})"


def _mask_names(mask_dir):
    """Sorted names of the mask PNGs in mask_dir (the files `load_mask` reads)."""
    return sorted(name for name in os.listdir(mask_dir) if name.lower().endswith(".png"))


def _stamp(path):
    """(size, mtime_ns) of a file, or None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns
