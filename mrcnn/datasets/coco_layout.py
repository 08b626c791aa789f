"""The MS COCO folder layout Matterport's ``samples/coco/coco.py`` reads, and its download.

::

    dataset_dir/annotations/instances_<subset><year>.json
    dataset_dir/<subset><year>/<file_name>          (minival, valminusminival: val<year>/)

    annotation_json, image_dir = coco_paths("/data/coco", "minival", "2014")
    download_coco("/data/coco", "train", "2017")   # what is missing, from cocodataset.org

"minival" and "valminusminival" are the 2014 splits of the validation images
that Detectron and Matterport used (5k / 35k images, annotation files of
their own, images in ``val2014/``).

Downloads (only what is missing) are written atomically (`mrcnn.download`):
a zip appears whole or not at all, and a zip is unpacked into a temporary
folder beside its target, then moved into place, so an interrupted download
or extraction leaves no half-filled image folder that would later pass for
a complete one.
"""

import os
import shutil
import tempfile
import zipfile

from mrcnn.download import fetch_url

__all__ = ["ANNOTATION_URLS", "IMAGES_URL", "SUBSETS", "YEARS", "coco_paths", "download_coco"]

YEARS = ("2014", "2017")
# Subsets with annotations per year ("test" images have none).
SUBSETS = {"2014": ("train", "val", "minival", "valminusminival"), "2017": ("train", "val")}
IMAGES_URL = "http://images.cocodataset.org/zips/{name}.zip"
ANNOTATION_URLS = {
    "trainval": "http://images.cocodataset.org/annotations/annotations_trainval{year}.zip",
    "minival": "https://dl.dropboxusercontent.com/s/o43o90bna78omob/"
               "instances_minival2014.json.zip?dl=0",
    "valminusminival": "https://dl.dropboxusercontent.com/s/s3tw5zcg7395368/"
                       "instances_valminusminival2014.json.zip?dl=0",
}
DOWNLOAD_TIMEOUT_S = 60


def _check(subset, year):
    year = str(year)
    if year not in YEARS:
        raise ValueError(f"COCO year must be one of {YEARS}, got {year!r}")
    if subset not in SUBSETS[year]:
        raise ValueError(f"COCO {year} subset must be one of {SUBSETS[year]}, got {subset!r}")
    return year


def coco_paths(dataset_dir, subset, year="2014"):
    """(annotation file, image folder) of a subset in Matterport's COCO layout.

    Args:
        dataset_dir: the COCO root folder.
        subset: "train", "val", and for 2014 "minival" or "valminusminival".
        year: "2014" or "2017" (an int is accepted).

    Raises:
        ValueError: an unknown year or subset.
    """
    year = _check(subset, year)
    dataset_dir = os.fspath(dataset_dir)
    annotation_json = os.path.join(dataset_dir, "annotations", f"instances_{subset}{year}.json")
    image_subset = "val" if subset in ("minival", "valminusminival") else subset
    return annotation_json, os.path.join(dataset_dir, f"{image_subset}{year}")


def _fetch_and_unpack(url, zip_path, into, timeout, verbose):
    """Download `url` to `zip_path` unless a whole one is there (from an interrupted run), then
    extract it into a new temporary folder inside `into`; return that folder."""
    if not os.path.exists(zip_path):
        if verbose:
            print(f"downloading {url} to {zip_path}")
        fetch_url(url, zip_path, timeout, verbose)
    tmp = tempfile.mkdtemp(dir=into, prefix=".unpack-")
    try:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(tmp)       # zipfile drops absolute paths and ".." parts
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def _download_images(dataset_dir, image_dir, url, timeout, verbose):
    name = os.path.basename(image_dir)
    zip_path = os.path.join(dataset_dir, f"{name}.zip")
    tmp = _fetch_and_unpack(url, zip_path, dataset_dir, timeout, verbose)
    try:
        unpacked = os.path.join(tmp, name)
        if not os.path.isdir(unpacked):
            raise ValueError(f"{zip_path}: expected a folder {name!r} in the archive, found "
                             f"{sorted(os.listdir(tmp))[:5]}")
        os.replace(unpacked, image_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.remove(zip_path)


def _download_annotations(dataset_dir, annotation_json, url, timeout, verbose):
    annotation_dir = os.path.dirname(annotation_json)
    os.makedirs(annotation_dir, exist_ok=True)
    zip_path = os.path.join(dataset_dir, os.path.basename(url.split("?")[0]))
    tmp = _fetch_and_unpack(url, zip_path, dataset_dir, timeout, verbose)
    try:
        found = {}
        for folder, _, files in os.walk(tmp):
            for file in files:
                if file.startswith("instances_") and file.endswith(".json"):
                    found[file] = os.path.join(folder, file)
        wanted = os.path.basename(annotation_json)
        if wanted not in found:
            raise ValueError(f"{zip_path}: no {wanted} in the archive (it holds "
                             f"{sorted(found) or 'no instances_*.json'})")
        for file, path in found.items():        # the trainval zip holds train and val
            target = os.path.join(annotation_dir, file)
            if not os.path.exists(target):
                os.replace(path, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.remove(zip_path)


def download_coco(dataset_dir, subset, year="2014", images_url=None, annotations_url=None,
                  timeout=DOWNLOAD_TIMEOUT_S, verbose=1):
    """Download and unpack what a subset lacks in `dataset_dir` (Matterport's ``auto_download``).

    The images (``<subset><year>.zip`` from cocodataset.org, ``val<year>`` for
    minival / valminusminival) when their folder is missing; the annotation
    file when it is missing (the year's trainval zip, or the minival /
    valminusminival zips Detectron published). A zip left by an interrupted
    run is used again; each zip is removed once unpacked.

    Args:
        dataset_dir: the COCO root folder (created if missing).
        subset, year: as in `coco_paths`.
        images_url, annotations_url: override the URLs (mirrors, ``file://`` copies).
        timeout: socket timeout in seconds.
        verbose: print what is downloaded.

    Returns:
        (annotation_json, image_dir) as `coco_paths`.

    Raises:
        ValueError: an unknown year or subset; an archive without the expected folder
            or file. OSError (``urllib.error.URLError``): the download failed.
    """
    annotation_json, image_dir = coco_paths(dataset_dir, subset, year)
    year = str(year)
    dataset_dir = os.fspath(dataset_dir)
    os.makedirs(dataset_dir, exist_ok=True)
    if not os.path.isdir(image_dir):
        url = images_url or IMAGES_URL.format(name=os.path.basename(image_dir))
        _download_images(dataset_dir, image_dir, url, timeout, verbose)
    if not os.path.exists(annotation_json):
        key = subset if subset in ("minival", "valminusminival") else "trainval"
        url = annotations_url or ANNOTATION_URLS[key].format(year=year)
        _download_annotations(dataset_dir, annotation_json, url, timeout, verbose)
    return annotation_json, image_dir
