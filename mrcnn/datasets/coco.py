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
"""

import contextlib
import io
import json
import logging
import os

import numpy as np

from mrcnn.dataset import Dataset

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
            file_name, height or width, or an annotation that refers to an
            unknown image or category or has no segmentation; the message
            names the file and the entry.
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
    for i, category in enumerate(data["categories"]):
        if not isinstance(category, dict) or "id" not in category or "name" not in category:
            raise ValueError(f"{path}: categories[{i}] = {category!r} needs an id and a name")
    image_ids = {image["id"] for image in data["images"]}
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
    return data


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
        ValueError: a malformed segmentation (not numbers, an RLE whose size
            is not the image's, uncompressed counts that do not add up to
            height * width).
    """
    from pycocotools import mask as mask_utils

    segmentation = ann["segmentation"]
    try:
        if isinstance(segmentation, list):
            polygons = [[float(v) for v in poly] for poly in segmentation
                        if isinstance(poly, (list, tuple)) and len(poly) >= 6]
            if any(len(poly) % 2 for poly in polygons):
                raise ValueError("a polygon has an odd number of coordinates; expected "
                                 "[x1, y1, x2, y2, ...]")
            if not polygons:
                return None
            return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        if isinstance(segmentation, dict) and "counts" in segmentation:
            size = [int(v) for v in segmentation.get("size", ())]
            if size != [height, width]:
                raise ValueError(f"RLE size {segmentation.get('size')!r} differs from the "
                                 f"image size [{height}, {width}]")
            counts = segmentation["counts"]
            if isinstance(counts, list):
                total = int(np.sum(np.asarray(counts, np.int64)))
                if total != height * width:
                    raise ValueError(f"uncompressed RLE counts add up to {total} pixels, "
                                     f"expected height * width = {height * width}")
                return mask_utils.frPyObjects(segmentation, height, width)
            if isinstance(counts, str):
                counts = counts.encode("ascii")
            if not isinstance(counts, bytes):
                raise ValueError(f"RLE counts must be a list or a string, got "
                                 f"{type(counts).__name__}")
            return {"size": size, "counts": counts}
    except (TypeError, OverflowError) as error:
        raise ValueError(f"malformed segmentation ({error})") from error
    raise ValueError(f"segmentation must be a list of polygons or an RLE dict with 'counts' "
                     f"and 'size', got {str(segmentation)[:80]}")


class CocoDataset(Dataset):
    """A COCO-format annotation file and its image folder as a `Dataset`.

    Classes are the file's categories (source class id = category id);
    `image_info` entries carry "height", "width", "file_name" and
    "annotations" (the image's annotation dicts of the loaded classes).
    """

    def load_coco(self, annotation_json, image_dir, class_ids=None, source="coco",
                  return_coco=False):
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

        Returns:
            the `COCO` object if return_coco, else None.

        Raises:
            FileNotFoundError: the JSON file, image_dir or an image file is
                missing.
            ValueError: a malformed file (see `read_coco_json`) or an unknown
                category id in class_ids.
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
            ValueError: a malformed segmentation; the message names the JSON
                file, the annotation id and the image id.
        """
        from pycocotools import mask as mask_utils

        info = self._info(image_id)
        height, width = info["height"], info["width"]
        rles, class_ids = [], []
        for ann in info["annotations"]:
            try:
                rle = annotation_rle(ann, height, width)
            except ValueError as error:
                raise ValueError(f"{info['annotation_json']}: annotation {ann.get('id')!r} of "
                                 f"image {info['id']!r} ({info['file_name']}): "
                                 f"{error}") from error
            if rle is None:
                continue
            class_id = self.map_source_class_id(f"{info['source']}.{ann['category_id']}")
            rles.append(rle)
            class_ids.append(-class_id if ann.get("iscrowd") else class_id)
        if not rles:
            return np.zeros((height, width, 0), bool), np.zeros(0, np.int32)
        masks = mask_utils.decode(rles).astype(bool)           # [H, W, N]
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
