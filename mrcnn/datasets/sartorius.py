"""Sartorius cell instance segmentation data (Kaggle 2021).

Layout of the competition data (and of `synthetic_cells.write_synthetic_sartorius`)::

    <data_dir>/train.csv                    one row per cell instance
    <data_dir>/train/<id>.png               grayscale 520x704 phase-contrast images
    <data_dir>/train_semi_supervised/<id>.png   unlabeled images (optional)

`train.csv` columns: ``id, annotation, width, height, cell_type, plate_time,
sample_date, sample_id, elapsed_timedelta``. ``annotation`` is the run-length
encoding of one instance over the row-major flattened image (``order="C"``,
1-indexed starts; see `mrcnn.data.rle`). Every image has a single cell type
(``astro``, ``cort`` or ``shsy5y``). Instances of an image may overlap.

    ds = SartoriusDataset()
    ds.load_sartorius("/data/sartorius", class_mode="cell_type")
    ds.prepare()                         # classes: BG, astro, cort, shsy5y
    masks, class_ids = ds.load_mask(0)   # bool [520, 704, N], int32 [N]

Only ``id``, ``annotation``, ``width``, ``height`` and ``cell_type`` are
required; the other columns are kept in `image_info` when present. pandas is
not needed: the CSV is read with the `csv` module, parsed once per file
(cached by path, size and modification time) and indexed by image, so
`load_mask` never rescans it.
"""

import csv
import dataclasses
import logging
import os

import numpy as np

from mrcnn.data.image import read_image_size
from mrcnn.data.rle import RLEDecodeError, decode_rle_stack
from mrcnn.dataset import Dataset, path_inside

logger = logging.getLogger(__name__)

SOURCE = "sartorius"
CELL_TYPES = ("astro", "cort", "shsy5y")
REQUIRED_COLUMNS = ("id", "annotation", "width", "height", "cell_type")
METADATA_COLUMNS = ("plate_time", "sample_date", "sample_id", "elapsed_timedelta")
CSV_COLUMNS = REQUIRED_COLUMNS + METADATA_COLUMNS
CLASS_MODES = ("cell_type", "single")

_RESERVED_INFO_KEYS = frozenset({"source", "path", "annotations", "csv_path", "csv_lines"})
_CSV_CACHE = {}          # (real path, size, mtime_ns) -> {id: SartoriusImageRecord}
_CSV_CACHE_ENTRIES = 4   # train.csv, a fold file or two, a synthetic one


@dataclasses.dataclass(frozen=True)
class SartoriusImageRecord:
    """All `train.csv` rows of one image.

    Attributes:
        image_id: str, the ``id`` column.
        height, width: int, image size in pixels.
        cell_type: str.
        annotations: tuple of str, one run-length string per instance.
        lines: tuple of int, the CSV line number of each annotation (the
            header is line 1), for error messages.
        metadata: dict of the other columns of the image's first row.
    """

    image_id: str
    height: int
    width: int
    cell_type: str
    annotations: tuple
    lines: tuple
    metadata: dict


def read_sartorius_csv(path):
    """Parse a Sartorius `train.csv` into one record per image.

    Rows of the same image need not be adjacent. The result is cached per
    file (path, size and modification time): reading the same file again
    returns the same records without parsing.

    Args:
        path: path of the CSV file.

    Returns:
        dict {image id: SartoriusImageRecord}, in order of first appearance.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a file that is not UTF-8 text (the message gives the
            byte offset, line and column of the first bad byte), malformed
            CSV syntax (e.g. a field over the csv module's size limit), an
            empty file, a missing required column, a header without rows, a
            row with the wrong number of fields, an empty id or annotation,
            a width/height that is not a positive integer (digits 0-9), or
            rows of one image that disagree on width, height or cell type;
            the message names the file, the line and the image id.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Sartorius CSV not found: {path!r}")
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key in _CSV_CACHE:
        return _CSV_CACHE[key]
    records = _parse_csv(path)
    if len(_CSV_CACHE) >= _CSV_CACHE_ENTRIES:
        _CSV_CACHE.pop(next(iter(_CSV_CACHE)))
    _CSV_CACHE[key] = records
    return records


def _parse_csv(path):
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            return _parse_rows(path, reader)
        except UnicodeDecodeError as error:
            raise ValueError(_not_utf8_message(path)) from error
        except csv.Error as error:
            raise ValueError(f"{path}, line {reader.line_num}: malformed CSV ({error})") from error


def _not_utf8_message(path):
    """Where the first byte that is not UTF-8 sits in the file (offset, line, column)."""
    with open(path, "rb") as f:
        data = f.read()
    skip = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        data[skip:].decode("utf-8")
    except UnicodeDecodeError as error:
        offset = skip + error.start
        line = data.count(b"\n", 0, offset) + 1
        column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
        return (f"{path}: not UTF-8 text: byte {data[offset]:#04x} at byte offset {offset} "
                f"(line {line}, column {column}) cannot be decoded ({error.reason}); save the "
                f"CSV as UTF-8 (e.g. it was written as Latin-1 / cp1252 by a spreadsheet)")
    return f"{path}: not UTF-8 text"


def _parse_rows(path, reader):
    """The records of `_parse_csv`, read from a csv.reader over the file."""
    header = next(reader, None)
    if header is None:
        raise ValueError(f"{path}: the CSV file is empty; expected a header line with "
                         f"columns {', '.join(CSV_COLUMNS)}")
    header = [name.strip() for name in header]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise ValueError(f"{path}, line 1: missing column(s) {missing}; the header is "
                         f"{header}, expected at least {list(REQUIRED_COLUMNS)}")
    col = {name: header.index(name) for name in header}
    # Other columns go to image_info, except names that image_info uses.
    extra = [name for name in header
             if name not in REQUIRED_COLUMNS and name not in _RESERVED_INFO_KEYS]

    rows = {}     # id -> [first line, height, width, cell type, annotations, lines, meta]
    for fields in reader:
        line = reader.line_num
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # blank line
        image_id = fields[col["id"]].strip() if len(fields) > col["id"] else ""
        where = f"{path}, line {line} (id {image_id!r})"
        if len(fields) != len(header):
            raise ValueError(f"{where}: {len(fields)} fields, expected {len(header)} "
                             f"({', '.join(header)})")
        if not image_id:
            raise ValueError(f"{path}, line {line}: empty id")
        annotation = fields[col["annotation"]].strip()
        if not annotation:
            raise ValueError(f"{where}: empty annotation; expected a run-length "
                             f"string 'start length start length ...'")
        height = _positive_int(fields[col["height"]], "height", where)
        width = _positive_int(fields[col["width"]], "width", where)
        cell_type = fields[col["cell_type"]].strip()
        entry = rows.get(image_id)
        if entry is None:
            meta = {name: fields[col[name]] for name in extra}
            rows[image_id] = [line, height, width, cell_type, [annotation], [line], meta]
            continue
        first = entry[0]
        for name, value, seen in (("height", height, entry[1]), ("width", width, entry[2]),
                                  ("cell_type", cell_type, entry[3])):
            if value != seen:
                raise ValueError(f"{where}: {name} is {value!r} but line {first} of the "
                                 f"same image says {seen!r}; an image has one {name}")
        entry[4].append(annotation)
        entry[5].append(line)
    if not rows:
        raise ValueError(f"{path}: the CSV file has a header but no annotation rows")
    return {image_id: SartoriusImageRecord(image_id, h, w, cell_type, tuple(annotations),
                                           tuple(lines), meta)
            for image_id, (_, h, w, cell_type, annotations, lines, meta) in rows.items()}


def _positive_int(text, name, where):
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit()):     # int() would take '1_0', '+8', '\u0668'
        raise ValueError(f"{where}: {name} {text!r} is not an integer (digits 0-9)")
    value = int(digits)
    if value < 1:
        raise ValueError(f"{where}: {name} must be positive, got {value}")
    return value


class SartoriusDataset(Dataset):
    """The Sartorius cell instance segmentation data as a `Dataset`.

    Classes (source "sartorius"): with ``class_mode="cell_type"`` one class
    per cell type in sorted order (astro = 1, cort = 2, shsy5y = 3); with
    ``class_mode="single"`` a single class "cell" = 1.

    `image_info` entries carry "height", "width", "cell_type",
    "annotations" (run-length strings, None for unlabeled images),
    "csv_path", "csv_lines" and the CSV's other columns.
    """

    def load_sartorius(self, data_dir, image_ids=None, subset="train",
                       class_mode="cell_type", csv_path=None, cell_types=CELL_TYPES,
                       allow_outside=False):
        """Register the annotated images of a Sartorius-format directory.

        Args:
            data_dir: directory holding `train.csv` and the image folder.
            image_ids: optional sequence of image ids to load (e.g. one part
                of `kfold_split`), in the order given; all images of the CSV
                (in order of first appearance) by default.
            subset: name of the image folder inside data_dir ("train").
            class_mode: "cell_type" (one class per cell type) or "single"
                (one class "cell").
            csv_path: the annotation CSV; `<data_dir>/train.csv` by default.
            cell_types: the cell-type names, sorted to give class ids 1..;
                None takes the types found in the CSV. Keep the default to
                get the same class ids for every subset of the data.
            allow_outside: accept ids that lead outside the image folder (an
                absolute path or a ``..`` component, e.g. ``../../x``); by
                default they are refused, so a CSV cannot make the dataset
                read files elsewhere.

        Raises:
            FileNotFoundError: data_dir, the CSV or an image file is missing.
            ValueError: a malformed CSV (see `read_sartorius_csv`), an
                unknown class_mode, a cell type not in `cell_types`, an
                image id not in the CSV, or an id that leads outside the
                image folder (see allow_outside).
        """
        data_dir = os.fspath(data_dir)
        if not os.path.isdir(data_dir):
            raise FileNotFoundError(f"Sartorius data directory not found: {data_dir!r}")
        csv_path = os.path.join(data_dir, "train.csv") if csv_path is None else os.fspath(csv_path)
        records = read_sartorius_csv(csv_path)
        if cell_types is None:
            cell_types = sorted({r.cell_type for r in records.values()})
        self._add_sartorius_classes(class_mode, cell_types)

        if image_ids is None:
            selected = list(records.values())
        else:
            ids = [str(i) for i in image_ids]
            unknown = [i for i in ids if i not in records]
            if unknown:
                raise ValueError(f"{len(unknown)} image id(s) are not in {csv_path}: "
                                 f"{unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
            selected = [records[i] for i in ids]

        image_dir = os.path.join(data_dir, subset)
        missing = []
        for record in selected:
            if record.cell_type not in self._cell_types and not (
                    class_mode == "single" and record.cell_type == ""):
                raise ValueError(
                    f"{csv_path}, line {record.lines[0]} (id {record.image_id!r}): unknown "
                    f"cell_type {record.cell_type!r}; expected one of {list(self._cell_types)} "
                    f"(pass cell_types=None to take the types found in the CSV)")
            path = path_inside(image_dir, f"{record.image_id}.png",
                               f"{csv_path}, line {record.lines[0]} (id {record.image_id!r})",
                               allow_outside)
            if not os.path.isfile(path):
                missing.append((record, path))
                continue
            self.add_image(SOURCE, image_id=record.image_id, path=path,
                           height=record.height, width=record.width,
                           cell_type=record.cell_type, annotations=record.annotations,
                           csv_path=csv_path, csv_lines=record.lines, **record.metadata)
        if missing:
            record, path = missing[0]
            raise FileNotFoundError(
                f"image {record.image_id!r} (listed in {csv_path}, line {record.lines[0]}) "
                f"has no image file: {path!r} not found ({len(missing)} of "
                f"{len(selected)} images are missing)")

    def load_unlabeled(self, data_dir, subset="train_semi_supervised", image_ids=None,
                       class_mode="cell_type", cell_types=CELL_TYPES, allow_outside=False):
        """Register images without annotations (`train_semi_supervised/*.png`).

        Their `load_mask` returns no instances; use them for pseudo-labelling
        or to look at predictions. The image size is read from the PNG
        header.

        Args:
            data_dir: the Sartorius data directory.
            subset: folder of the unlabeled images inside data_dir.
            image_ids: optional ids (file names without ".png"); all PNG files
                of the folder, sorted by name, by default.
            class_mode, cell_types: as in `load_sartorius` (the classes are
                registered so that the dataset matches the labeled one).
            allow_outside: accept ids that lead outside the folder, as in
                `load_sartorius`.

        Raises:
            FileNotFoundError: the folder or a requested image is missing.
            ValueError: an id leads outside the folder (see allow_outside).
        """

        self._add_sartorius_classes(class_mode, cell_types)
        image_dir = os.path.join(os.fspath(data_dir), subset)
        if not os.path.isdir(image_dir):
            raise FileNotFoundError(f"unlabeled image folder not found: {image_dir!r}")
        if image_ids is None:
            image_ids = sorted(name[:-4] for name in os.listdir(image_dir)
                               if name.lower().endswith(".png"))
        for image_id in image_ids:
            what = f"unlabeled image {image_id!r}"
            path = path_inside(image_dir, f"{image_id}.png", what, allow_outside)
            height, width = read_image_size(path, what)
            self.add_image(SOURCE, image_id=str(image_id), path=path, height=height,
                           width=width, cell_type=None, annotations=None)

    def load_pseudo_labels(self, csv_path, image_dir, image_ids=None, class_mode="cell_type",
                           cell_types=CELL_TYPES, allow_outside=False):
        """Register pseudo-labelled images: a `train.csv`-format file over another folder.

        The rows come from `mrcnn.datasets.pseudo_labels` (e.g.
        `samples/cell/pseudo_label.py`) and the images from `image_dir`,
        typically ``<data_dir>/train_semi_supervised``. Call it after (or
        before) `load_sartorius` on the same dataset to train on both; the
        images get ``pseudo_label=True`` in `image_info`. A row with an empty
        cell type (a single-class model's prediction) needs
        ``class_mode="single"``.

        Args:
            csv_path: the pseudo-label CSV.
            image_dir: folder holding ``<id>.png`` of every image of the CSV.
            image_ids, class_mode, cell_types, allow_outside: as in
                `load_sartorius`.

        Raises:
            as `load_sartorius`.
        """
        image_dir = os.path.abspath(os.fspath(image_dir))
        first = len(self.image_info)
        self.load_sartorius(os.path.dirname(image_dir), image_ids=image_ids,
                            subset=os.path.basename(image_dir), class_mode=class_mode,
                            csv_path=csv_path, cell_types=cell_types,
                            allow_outside=allow_outside)
        for info in self.image_info[first:]:
            info["pseudo_label"] = True

    def _add_sartorius_classes(self, class_mode, cell_types):
        if class_mode not in CLASS_MODES:
            raise ValueError(f"class_mode must be one of {CLASS_MODES}, got {class_mode!r}")
        cell_types = tuple(sorted(str(c) for c in cell_types))
        if not cell_types:
            raise ValueError("cell_types must name at least one cell type")
        previous = getattr(self, "_sartorius_classes", None)
        if previous is not None and previous != (class_mode, cell_types):
            raise ValueError(f"this dataset already uses class_mode={previous[0]!r} with cell "
                             f"types {list(previous[1])}; got class_mode={class_mode!r} with "
                             f"{list(cell_types)}")
        self._sartorius_classes = (class_mode, cell_types)
        self._cell_types = cell_types
        if class_mode == "single":
            self.add_class(SOURCE, 1, "cell")
        else:
            for i, name in enumerate(cell_types):
                self.add_class(SOURCE, i + 1, name)

    def load_image(self, image_id):
        """The image as RGB uint8 [H, W, 3] (gray replicated to 3 channels).

        16-bit, gray+alpha and RGBA files are converted (see
        `Dataset.load_image`); a colour RGB file, where grayscale is
        expected, is converted to its luminance (ITU-R 601 weights) and
        replicated, so every image reaches the model as gray.

        Raises:
            FileNotFoundError: the file is missing.
            ValueError: the file is unreadable or its size differs from the
                CSV's width and height.
        """
        image = super().load_image(image_id)
        if not (np.array_equal(image[..., 0], image[..., 1])
                and np.array_equal(image[..., 0], image[..., 2])):
            gray = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
            image = np.repeat(np.clip(np.rint(gray), 0, 255).astype(np.uint8)[..., None], 3, -1)
        info = self.image_info[image_id]
        if image.shape[:2] != (info["height"], info["width"]):
            where = (f"{info['csv_path']}, line {info['csv_lines'][0]}"
                     if info.get("annotations") is not None else "its PNG header")
            raise ValueError(f"image {info['id']!r} ({info['path']}) is {image.shape[0]}x"
                             f"{image.shape[1]} but {where} says {info['height']}x{info['width']}")
        return image

    def load_mask(self, image_id):
        """Decode the image's run-length annotations.

        Returns:
            masks: bool [H, W, N], one channel per CSV row of the image (in
                CSV order); unlabeled images give [H, W, 0].
            class_ids: int32 [N], internal class ids (the cell type's, or the
                single "cell" class). Call `prepare()` first.

        Raises:
            ValueError: a malformed run-length string (odd number of values,
                a non-integer, a run past the image); the message names the
                CSV file, the line and the image id.
        """
        info = self._info(image_id)
        height, width = info["height"], info["width"]
        annotations = info.get("annotations")
        if not annotations:
            return np.zeros((height, width, 0), bool), np.zeros(0, np.int32)
        try:
            masks = decode_rle_stack(annotations, (height, width), order="C")
        except RLEDecodeError as error:
            line = info["csv_lines"][error.index]
            raise ValueError(f"{info['csv_path']}, line {line} (id {info['id']!r}): bad "
                             f"annotation: {error.reason}") from error
        class_mode, cell_types = self._sartorius_classes
        source_id = 1 if class_mode == "single" else cell_types.index(info["cell_type"]) + 1
        class_id = self.map_source_class_id(f"{SOURCE}.{source_id}")
        return masks, np.full(masks.shape[-1], class_id, np.int32)

    def image_reference(self, image_id):
        """"<id> (<cell type>, <path>)"."""
        info = self._info(image_id)
        cell_type = info.get("cell_type") or (
            "cell type unknown" if info.get("annotations") else "unlabeled")
        return f"{info['id']} ({cell_type}, {info['path']})"
