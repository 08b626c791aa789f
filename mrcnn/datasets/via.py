"""VGG Image Annotator (VIA) region files as a `Dataset` (Matterport's balloon sample's format).

VIA's JSON export (``via_region_data.json``; VIA 1.x and 2.x) maps a key per
image to ``{"filename", "size", "regions", "file_attributes"}``; ``regions``
is a list (VIA 2) or a dict of index -> region (VIA 1). A region holds
``shape_attributes`` (its outline) and ``region_attributes`` (free fields,
e.g. a class name)::

    {"img1.jpg123": {"filename": "img1.jpg", "size": 123, "regions": [
        {"shape_attributes": {"name": "polygon", "all_points_x": [...], "all_points_y": [...]},
         "region_attributes": {"type": "cell"}}]}}

    dataset = ViaDataset()
    dataset.load_via("train/via_region_data.json", "train", class_attribute="type")
    dataset.prepare()

Shapes drawn as masks (coordinates in pixels, a pixel's centre at its integer
row and column, as ``skimage.draw``): ``polygon`` and ``polyline`` (closed),
``rect`` (x, y, width, height: columns x .. x + width - 1), ``circle`` (cx,
cy, r) and ``ellipse`` (cx, cy, rx, ry, theta: the ellipse's x axis turned by
theta radians from the image's x axis towards its y axis, i.e. clockwise on
screen, as VIA draws it). ``point`` regions mark no area and are refused.
"""

import json
import os

import numpy as np

from mrcnn.data.image import read_image_size
from mrcnn.dataset import Dataset, path_inside

__all__ = ["SHAPES", "ViaDataset", "read_via_json", "region_mask"]

SHAPES = ("polygon", "polyline", "rect", "circle", "ellipse")
_FIELDS = {"polygon": ("all_points_x", "all_points_y"),
           "polyline": ("all_points_x", "all_points_y"),
           "rect": ("x", "y", "width", "height"), "circle": ("cx", "cy", "r"),
           "ellipse": ("cx", "cy", "rx", "ry")}


def read_via_json(path):
    """The images of a VIA export: a list of ``(filename, [region, ...])``, regions checked.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a VIA export (with the entry and field at fault), or a
            region of an unknown or area-less shape.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"VIA annotation file not found: {path!r}")
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not JSON ({error})") from None
    if isinstance(data, dict) and "_via_img_metadata" in data:      # a VIA 2 project file
        data = data["_via_img_metadata"]
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected VIA's export, an object of images, got "
                         f"{type(data).__name__}")
    images = []
    for key, entry in data.items():
        if not isinstance(entry, dict) or "filename" not in entry:
            raise ValueError(f"{path}: image {key!r} has no 'filename'")
        regions = entry.get("regions") or []
        if isinstance(regions, dict):                      # VIA 1.x: {"0": region, ...}
            regions = [regions[k] for k in sorted(regions, key=_index_order)]
        for n, region in enumerate(regions):
            _check_region(region, f"{path}: image {entry['filename']!r}, region {n}")
        images.append((entry["filename"], list(regions)))
    return images


def _index_order(key):
    return (0, int(key)) if str(key).isdigit() else (1, str(key))


def _check_region(region, where):
    shape = region.get("shape_attributes") if isinstance(region, dict) else None
    if not isinstance(shape, dict):
        raise ValueError(f"{where}: no 'shape_attributes'")
    name = shape.get("name")
    if name not in SHAPES:
        raise ValueError(f"{where}: shape {name!r} has no area to make a mask of; expected one "
                         f"of {SHAPES}")
    missing = [f for f in _FIELDS[name] if f not in shape]
    if missing:
        raise ValueError(f"{where}: {name} without {missing}")
    if name in ("polygon", "polyline"):
        xs, ys = shape["all_points_x"], shape["all_points_y"]
        if len(xs) != len(ys) or len(xs) < 3:
            raise ValueError(f"{where}: a {name} needs as many x as y points, at least 3; got "
                             f"{len(xs)} and {len(ys)}")


def region_mask(shape, height, width):
    """Bool ``[height, width]`` mask of one region's ``shape_attributes`` (cut at the image)."""
    import skimage.draw

    name = shape["name"]
    mask = np.zeros((height, width), bool)
    if name in ("polygon", "polyline"):
        rr, cc = skimage.draw.polygon(np.asarray(shape["all_points_y"], float),
                                      np.asarray(shape["all_points_x"], float), (height, width))
        mask[rr, cc] = True
        return mask
    if name == "rect":
        x, y = int(round(shape["x"])), int(round(shape["y"]))
        w, h = int(round(shape["width"])), int(round(shape["height"]))
        mask[max(y, 0):max(y + h, 0), max(x, 0):max(x + w, 0)] = True
        return mask
    cx, cy = float(shape["cx"]), float(shape["cy"])
    if name == "circle":
        rx = ry = float(shape["r"])
        theta = 0.0
    else:
        rx, ry, theta = float(shape["rx"]), float(shape["ry"]), float(shape.get("theta", 0.0))
    reach = max(rx, ry)
    r0, r1 = max(int(np.floor(cy - reach)), 0), min(int(np.ceil(cy + reach)) + 1, height)
    c0, c1 = max(int(np.floor(cx - reach)), 0), min(int(np.ceil(cx + reach)) + 1, width)
    if r0 >= r1 or c0 >= c1 or rx <= 0 or ry <= 0:
        return mask
    dy, dx = np.meshgrid(np.arange(r0, r1) - cy, np.arange(c0, c1) - cx, indexing="ij")
    cos, sin = np.cos(theta), np.sin(theta)
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos     # along the ellipse's own axes
    mask[r0:r1, c0:c1] = (u / rx) ** 2 + (v / ry) ** 2 <= 1.0
    return mask


class ViaDataset(Dataset):
    """Images and regions of a VIA export; one class, or one per value of a region attribute."""

    def load_via(self, annotation_json, image_dir, class_attribute=None, class_name="object",
                 source="via", allow_outside=False):
        """Register the images of a VIA export and their regions.

        Args:
            annotation_json: the export (``via_region_data.json``) or a VIA 2 project file.
            image_dir: folder of the images (``filename`` is relative to it).
            class_attribute: a ``region_attributes`` field whose values name the classes
                (in sorted order); None: every region is `class_name`.
            class_name: the one class's name when `class_attribute` is None.
            source: source name of the classes and images.
            allow_outside: accept a filename leading outside image_dir.

        Raises:
            FileNotFoundError: the file, the folder or an image is missing.
            ValueError: see `read_via_json`; a region without `class_attribute`.
        """
        images = read_via_json(annotation_json)
        image_dir = os.fspath(image_dir)
        if not os.path.isdir(image_dir):
            raise FileNotFoundError(f"VIA image folder not found: {image_dir!r}")
        names = [class_name]
        if class_attribute is not None:
            names = set()
            for filename, regions in images:
                for n, region in enumerate(regions):
                    value = (region.get("region_attributes") or {}).get(class_attribute)
                    if value in (None, ""):
                        raise ValueError(f"{annotation_json}: image {filename!r}, region {n} has "
                                         f"no {class_attribute!r} in its region_attributes")
                    names.add(str(value))
            names = sorted(names)
        for class_id, name in enumerate(names, start=1):
            self.add_class(source, class_id, name)
        ids = {name: class_id for class_id, name in enumerate(names, start=1)}
        for filename, regions in images:
            what = f"{annotation_json}: image {filename!r}"
            path = path_inside(image_dir, filename, what, allow_outside)
            height, width = read_image_size(path, what)
            classes = [ids[str(r["region_attributes"][class_attribute])] if class_attribute
                       else 1 for r in regions]
            self.add_image(source, image_id=filename, path=path, width=width, height=height,
                           polygons=[r["shape_attributes"] for r in regions],
                           source_class_ids=classes)

    def load_mask(self, image_id):
        """Masks of the image's regions (bool ``[H, W, N]``) and their class ids (int32 ``[N]``)."""
        info = self.image_info[image_id]
        height, width = info["height"], info["width"]
        shapes = info["polygons"]
        masks = np.zeros((height, width, len(shapes)), bool)
        for k, shape in enumerate(shapes):
            masks[..., k] = region_mask(shape, height, width)
        class_ids = np.array([self.map_source_class_id(f"{info['source']}.{c}")
                              for c in info["source_class_ids"]], np.int32)
        return masks, class_ids

