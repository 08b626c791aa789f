"""COCO-format instance annotations (polygons or RLE), e.g. LIVECell.

The format of MS COCO and of LIVECell (the Sartorius competition's
predecessor data set, used to pretrain before fine-tuning on Sartorius)::

    {"images":      [{"id", "file_name", "height", "width"}, ...],
     "annotations": [{"id", "image_id", "category_id", "segmentation",
                      "iscrowd"}, ...],
     "categories":  [{"id", "name"}, ...]}

"segmentation" is a list of polygons ``[[x1, y1, x2, y2, ...], ...]``, an
uncompressed RLE ``{"counts": [int, ...], "size": [h, w]}`` or a compressed
one (``counts`` a string); masks are decoded with pycocotools. LIVECell's
files store "annotations" as a dict keyed by annotation id, which
pycocotools' `COCO` cannot index; it is accepted here.

    ds = CocoDataset()
    ds.load_coco("livecell_coco_train.json", "images/livecell_train_val_images")
    ds.prepare()

As in Matterport, crowd annotations (``iscrowd: 1``) get a negative class id
in `load_mask` so that training can skip them.

Every annotation is checked when the file is read (`read_coco_json`), before
pycocotools sees it: a NaN or a coordinate of 1e9 in a polygon would make
pycocotools rasterise a line billions of pixels long (1e7 costs ~800 MB, 1e9
~22 GB), and a malformed compressed RLE decodes to uninitialised memory. See
`check_segmentation` for the rules.
"""

import contextlib
import io
import json
import logging
import math
import os

import numpy as np

from mrcnn.data.rle import coco_compressed_counts
from mrcnn.dataset import Dataset, path_inside

logger = logging.getLogger(__name__)


def read_coco_json(path):
    """Read and check a COCO annotation file.

    Args:
        path: the JSON file.

    Returns:
        dict with "images", "annotations" (a list, also when the file holds
        a dict) and "categories" lists, and the file's other keys.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not valid JSON (e.g. a truncated download), a missing
            "images" or "categories" list, an image entry without id,
            file_name, height or width (or a height / width that is not a
            positive integer), an annotation that refers to an unknown image
            or category or has no segmentation, a segmentation that breaks
            the rules of `check_segmentation`, or a "bbox" that is not four
            finite numbers; the message names the file and the entry (for
            a segmentation: the annotation id and the image's id and file
            name).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"COCO annotation file not found: {path!r}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}, column "
                         f"{error.colno}); is the file truncated?") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with 'images', 'annotations' and "
                         f"'categories', got a {type(data).__name__}")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: expected a list under {key!r}, got "
                             f"{type(data.get(key)).__name__}")
    annotations = data.get("annotations", [])
    if isinstance(annotations, dict):          # LIVECell: {annotation id: annotation}
        annotations = list(annotations.values())
    if not isinstance(annotations, list):
        raise ValueError(f"{path}: expected a list (or a dict) under 'annotations', got "
                         f"{type(annotations).__name__}")
    data = dict(data, annotations=annotations)

    for i, image in enumerate(data["images"]):
        missing = [k for k in ("id", "file_name", "height", "width")
                   if not isinstance(image, dict) or k not in image]
        if missing:
            raise ValueError(f"{path}: images[{i}] (id {_get(image, 'id')!r}) lacks "
                             f"{missing}; every image needs id, file_name, height and width")
        for key in ("height", "width"):
            if _positive_int(image[key]) is None:
                raise ValueError(f"{path}: images[{i}] (id {image['id']!r}): {key} must be a "
                                 f"positive integer, got {image[key]!r}")
        if not isinstance(image["file_name"], str) or not image["file_name"]:
            raise ValueError(f"{path}: images[{i}] (id {image['id']!r}): file_name must be a "
                             f"non-empty string, got {image['file_name']!r}")
    for i, category in enumerate(data["categories"]):
        if not isinstance(category, dict) or "id" not in category or "name" not in category:
            raise ValueError(f"{path}: categories[{i}] = {category!r} needs an id and a name")
    images_by_id = {image["id"]: image for image in data["images"]}
    image_ids = images_by_id.keys()
    category_ids = {category["id"] for category in data["categories"]}
    for i, ann in enumerate(annotations):
        where = f"{path}: annotations[{i}] (id {_get(ann, 'id')!r})"
        if not isinstance(ann, dict):
            raise ValueError(f"{where} is a {type(ann).__name__}, expected an object")
        if ann.get("image_id") not in image_ids:
            raise ValueError(f"{where} refers to image_id {ann.get('image_id')!r}, which is "
                             f"not in 'images'")
        if ann.get("category_id") not in category_ids:
            raise ValueError(f"{where} refers to category_id {ann.get('category_id')!r}; "
                             f"known categories: {sorted(category_ids)}")
        if "segmentation" not in ann:
            raise ValueError(f"{where} has no 'segmentation'")
        image = images_by_id[ann["image_id"]]
        try:
            check_segmentation(ann["segmentation"], _positive_int(image["height"]),
                               _positive_int(image["width"]))
            if "bbox" in ann:
                _check_bbox(ann["bbox"])
        except ValueError as error:
            raise ValueError(f"{path}: {_annotation_name(ann, image)}: {error}") from None
    return data


def _annotation_name(ann, image):
    """"annotation <id> of image <id> (<file name>)", as errors name an annotation."""
    return f"annotation {ann.get('id')!r} of image {image['id']!r} ({image['file_name']})"


def _positive_int(value):
    """int(value) for a positive integer (or integral float), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    if not _finite(value) or value != int(value) or value < 1:
        return None
    return int(value)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_bbox(bbox):
    if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(map(_is_number, bbox))
            and all(map(_finite, bbox))):
        raise ValueError(f"bbox must be four finite numbers [x, y, width, height], got "
                         f"{str(bbox)[:80]}")


_NUMBER_TYPES = frozenset({int, float})


def _all_finite(values):
    """True when every number is finite (one C-level sum instead of a call per value)."""
    try:
        return math.isfinite(sum(values))        # NaN and inf propagate through the sum
    except OverflowError:                        # an int too large for a float
        return False


def _finite(value):
    try:
        return math.isfinite(value)
    except OverflowError:                      # an int too large for a float
        return False


# A polygon may reach this many image sizes beyond each border (pycocotools
# rasterises the whole outline, so its cost grows with the coordinates).
POLYGON_MARGIN = 1.0


def check_segmentation(segmentation, height, width):
    """Raise ValueError unless `segmentation` is safe and valid for a height x width image.

    Rules:
        polygons ``[[x1, y1, x2, y2, ...], ...]``: each polygon a list of
            numbers (not strings, not booleans), finite, an even count;
            x within [-width, 2 * width] and y within [-height, 2 * height]
            (POLYGON_MARGIN image sizes beyond each border). A polygon of
            fewer than 3 points (under 6 numbers) is degenerate: it is
            skipped, as COCO's own files contain such polygons.
        RLE ``{"counts", "size"}``: size equal to [height, width]; counts a
            list of non-negative integers, or a compressed string (the
            pycocotools alphabet, '0'..'o'), whose runs add up to exactly
            height * width pixels.

    Args:
        segmentation: the annotation's "segmentation".
        height, width: the image size.

    Returns:
        the polygons to rasterise (list of lists of floats; empty when all
        are degenerate), or None for an RLE.

    Raises:
        ValueError: the first rule broken (which polygon and value, or the
            RLE's size or pixel count).
    """
    if isinstance(segmentation, list):
        polygons = []
        for k, poly in enumerate(segmentation):
            if not isinstance(poly, (list, tuple)):
                raise ValueError(f"polygon {k} is {str(poly)[:40]!r}, expected a list of "
                                 f"coordinates [x1, y1, x2, y2, ...]")
            if not set(map(type, poly)) <= _NUMBER_TYPES:      # bool is not a number here
                bad = next(v for v in poly if not _is_number(v))
                raise ValueError(f"polygon {k} has the non-number {bad!r}; coordinates must "
                                 f"be numbers")
            if len(poly) % 2:
                raise ValueError(f"polygon {k} has an odd number of coordinates "
                                 f"({len(poly)}); expected [x1, y1, x2, y2, ...]")
            bad = None if _all_finite(poly) else next((v for v in poly if not _finite(v)), None)
            if bad is not None:                 # (a sum that overflowed: the bounds catch it)
                raise ValueError(f"polygon {k} has the coordinate {bad!r}; coordinates must "
                                 f"be finite numbers")
            if len(poly) < 6:
                continue                            # degenerate (< 3 points): skipped
            for axis, values, size in (("x", poly[0::2], width), ("y", poly[1::2], height)):
                lo, hi = min(values), max(values)
                margin = POLYGON_MARGIN * size
                if lo < -margin or hi > size + margin:
                    raise ValueError(
                        f"polygon {k} has {axis} coordinates from {lo} to {hi}, beyond the "
                        f"image ({width}x{height}) by more than {POLYGON_MARGIN:g} image "
                        f"size; allowed {axis}: {-margin:g}..{size + margin:g}")
            polygons.append(list(map(float, poly)))
        return polygons
    if isinstance(segmentation, dict) and "counts" in segmentation:
        size = segmentation.get("size")
        if not (isinstance(size, (list, tuple)) and len(size) == 2
                and [_positive_int(v) for v in size] == [height, width]):
            raise ValueError(f"RLE size {size!r} differs from the image size "
                             f"[{height}, {width}]")
        counts = segmentation["counts"]
        if isinstance(counts, list):
            if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0
                       for c in counts):
                bad = next(c for c in counts if not (isinstance(c, int)
                                                     and not isinstance(c, bool) and c >= 0))
                raise ValueError(f"uncompressed RLE counts must be non-negative integers, "
                                 f"got {bad!r}")
            total = sum(counts)
            what = "uncompressed RLE counts"
        elif isinstance(counts, (str, bytes)):
            total = sum(coco_compressed_counts(counts))
            what = "compressed RLE counts"
        else:
            raise ValueError(f"RLE counts must be a list or a string, got "
                             f"{type(counts).__name__}")
        if total != height * width:
            raise ValueError(f"{what} add up to {total} pixels, expected height * width = "
                             f"{height * width}")
        return None
    raise ValueError(f"segmentation must be a list of polygons or an RLE dict with 'counts' "
                     f"and 'size', got {str(segmentation)[:80]}")


def _get(obj, key):
    return obj.get(key) if isinstance(obj, dict) else None


def annotation_rle(ann, height, width):
    """The pycocotools RLE of one annotation's segmentation.

    Args:
        ann: COCO annotation dict with "segmentation" (polygons, uncompressed
            or compressed RLE).
        height, width: the image size.

    Returns:
        a pycocotools RLE dict, or None when the polygons are all degenerate
        (fewer than 3 points).

    Raises:
        ValueError: a segmentation that breaks the rules of
            `check_segmentation` (checked again here, so that annotations
            added or edited after loading cannot reach pycocotools unchecked).
    """
    from pycocotools import mask as mask_utils

    segmentation = ann["segmentation"]
    polygons = check_segmentation(segmentation, height, width)
    if polygons is not None:
        if not polygons:
            return None
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    counts = segmentation["counts"]
    if isinstance(counts, list):
        return mask_utils.frPyObjects({"counts": counts, "size": [height, width]}, height, width)
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return {"size": [height, width], "counts": counts}


class CocoDataset(Dataset):
    """A COCO-format annotation file and its image folder as a `Dataset`.

    Classes are the file's categories (source class id = category id);
    `image_info` entries carry "height", "width", "file_name" and
    "annotations" (the image's annotation dicts of the loaded classes).
    """

    def load_coco(self, annotation_json, image_dir, class_ids=None, source="coco",
                  return_coco=False, allow_outside=False):
        """Register the images and annotations of a COCO-format file.

        Args:
            annotation_json: path of the annotation file.
            image_dir: folder of the images. An image's path is
                `image_dir/file_name`; when that file is missing, the file of
                the same base name anywhere under image_dir is used (LIVECell
                mirrors nest the images in one folder per cell line).
            class_ids: optional category ids to load; then only the images
                with at least one annotation of those categories are loaded.
                All categories and all images by default.
            source: source name of the classes and images (e.g. "livecell").
            return_coco: also return a pycocotools `COCO` object of the file
                (for COCOeval).
            allow_outside: accept a file_name that leads outside image_dir
                (an absolute path or a ``..`` component); refused by default,
                so that an annotation file cannot make the dataset read
                files elsewhere.

        Returns:
            the `COCO` object if return_coco, else None.

        Raises:
            FileNotFoundError: the JSON file, image_dir or an image file is
                missing.
            ValueError: a malformed file (see `read_coco_json`), an unknown
                category id in class_ids, or a file_name that leads outside
                image_dir (see allow_outside).
        """
        annotation_json = os.fspath(annotation_json)
        image_dir = os.fspath(image_dir)
        data = read_coco_json(annotation_json)
        if not os.path.isdir(image_dir):
            raise FileNotFoundError(f"COCO image folder not found: {image_dir!r}")
        categories = {c["id"]: c["name"] for c in data["categories"]}
        if class_ids is None:
            class_ids = sorted(categories)
        else:
            class_ids = sorted(set(class_ids))
            unknown = [c for c in class_ids if c not in categories]
            if unknown:
                raise ValueError(f"class_ids {unknown} are not categories of "
                                 f"{annotation_json}; known: {sorted(categories)}")
        for class_id in class_ids:
            self.add_class(source, class_id, categories[class_id])

        wanted = set(class_ids)
        per_image = {}
        for ann in data["annotations"]:
            if ann["category_id"] in wanted:
                per_image.setdefault(ann["image_id"], []).append(ann)
        images = data["images"]
        if len(wanted) < len(categories):
            images = [image for image in images if image["id"] in per_image]

        resolver = _ImagePathResolver(image_dir)
        missing = []
        for image in images:
            path_inside(image_dir, image["file_name"],
                        f"{annotation_json}: image {image['id']!r} (file_name)", allow_outside)
            path = resolver(image["file_name"])
            if path is None:
                missing.append(image)
                continue
            self.add_image(source, image_id=image["id"], path=path,
                           file_name=image["file_name"], height=int(image["height"]),
                           width=int(image["width"]),
                           annotations=per_image.get(image["id"], []),
                           annotation_json=annotation_json)
        if missing:
            image = missing[0]
            raise FileNotFoundError(
                f"image {image['id']!r} of {annotation_json}: file {image['file_name']!r} not "
                f"found in {image_dir!r} or its sub-folders ({len(missing)} of {len(images)} "
                f"images are missing)")
        if return_coco:
            return coco_index(data)
        return None

    def load_mask(self, image_id):
        """Decode the image's annotations with pycocotools.

        Returns:
            masks: bool [H, W, N], annotations with an empty mask dropped.
            class_ids: int32 [N] internal class ids; negative for crowd
                annotations (``iscrowd``), as in Matterport. Call `prepare()`
                first.

        Raises:
            ValueError: a malformed segmentation, or one pycocotools cannot
                decode ("Invalid RLE mask representation"); the message
                names the JSON file, the annotation id and the image's id and
                file name.
        """
        from pycocotools import mask as mask_utils

        info = self._info(image_id)
        height, width = info["height"], info["width"]

        def where(ann):
            return f"{info['annotation_json']}: {_annotation_name(ann, info)}"

        rles, class_ids, used = [], [], []
        for ann in info["annotations"]:
            try:
                rle = annotation_rle(ann, height, width)
            except ValueError as error:
                raise ValueError(f"{where(ann)}: {error}") from error
            if rle is None:
                continue
            class_id = self.map_source_class_id(f"{info['source']}.{ann['category_id']}")
            rles.append(rle)
            used.append(ann)
            class_ids.append(-class_id if ann.get("iscrowd") else class_id)
        if not rles:
            return np.zeros((height, width, 0), bool), np.zeros(0, np.int32)
        try:
            masks = mask_utils.decode(rles).astype(bool)       # [H, W, N]
        except ValueError:                                     # name the annotation
            for ann, rle in zip(used, rles):
                try:
                    mask_utils.decode([rle])
                except ValueError as one:
                    raise ValueError(f"{where(ann)}: pycocotools cannot decode it "
                                     f"({one})") from one
            raise
        keep = masks.any(axis=(0, 1))
        return np.ascontiguousarray(masks[..., keep]), np.asarray(class_ids, np.int32)[keep]

    def image_reference(self, image_id):
        """"<file_name> (<source> image <id>)"."""
        info = self._info(image_id)
        return f"{info['file_name']} ({info['source']} image {info['id']})"


class _ImagePathResolver:
    """Finds `file_name` under image_dir, by relative path or by base name."""

    def __init__(self, image_dir):
        self.image_dir = image_dir
        self._by_name = None

    def __call__(self, file_name):
        path = os.path.join(self.image_dir, file_name)
        if os.path.isfile(path):
            return path
        if self._by_name is None:
            self._by_name = {}
            for folder, _, names in os.walk(self.image_dir):
                for name in names:
                    self._by_name.setdefault(name, os.path.join(folder, name))
        return self._by_name.get(os.path.basename(file_name))


def coco_index(data):
    """A pycocotools COCO object over an already-loaded COCO dict (no prints)."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco
