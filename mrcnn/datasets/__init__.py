"""Ready-made `Dataset` subclasses for the supported data formats.

- `SartoriusDataset`: Sartorius cell segmentation (train.csv with row-major
  RLE + PNG folder); `read_sartorius_csv`, `decode_rle_stack`.
- `NucleusDataset`: 2018 Data Science Bowl folders (one PNG per nucleus).
- `CocoDataset`: COCO-format JSON (polygons / RLE), e.g. LIVECell.
- `ShapesDataset`: generated squares, circles and triangles (in memory).
- `ViaDataset`: VGG Image Annotator exports (polygons, rects, circles, ellipses).
- Synthetic Sartorius-format cell images: `make_cell_image`,
  `write_synthetic_sartorius`, `ensure_synthetic_sartorius`.
- Pseudo-labels (seed 004's semi-supervised step): `select_pseudo_labels`,
  `image_cell_type`, `pseudo_label_rows`, `write_pseudo_labels`.
- `kfold_split`, `kfold_indices`, `subset_dataset`, `kfold_datasets`: k-fold
  cross-validation split by image.
"""

from mrcnn.data.rle import decode_rle_stack
from mrcnn.datasets.coco import CocoDataset, read_coco_json
from mrcnn.datasets.folds import kfold_datasets, kfold_indices, kfold_split, subset_dataset
from mrcnn.datasets.nucleus import NucleusDataset
from mrcnn.datasets.pseudo_labels import (image_cell_type, pseudo_label_rows,
                                          select_pseudo_labels, write_pseudo_labels)
from mrcnn.datasets.sartorius import CELL_TYPES, SartoriusDataset, read_sartorius_csv
from mrcnn.datasets.shapes import ShapesDataset
from mrcnn.datasets.synthetic_cells import (ensure_synthetic_sartorius, make_cell_image,
                                            synthetic_sartorius_image,
                                            write_synthetic_sartorius)
from mrcnn.datasets.via import ViaDataset, read_via_json

__all__ = [
    "CELL_TYPES", "CocoDataset", "NucleusDataset", "SartoriusDataset", "ShapesDataset",
    "decode_rle_stack", "ensure_synthetic_sartorius", "kfold_split", "make_cell_image",
    "kfold_datasets", "kfold_indices", "subset_dataset",
    "read_coco_json", "read_sartorius_csv", "synthetic_sartorius_image",
    "write_synthetic_sartorius", "image_cell_type", "pseudo_label_rows",
    "select_pseudo_labels", "write_pseudo_labels", "ViaDataset", "read_via_json",
]
