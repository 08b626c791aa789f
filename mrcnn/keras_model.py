"""`MaskRCNNModel`: the Keras model class of both graphs, with Matterport's weight files.

Keras 3 ``Model.save_weights`` only writes ``*.weights.h5`` files, stored by
structure. Matterport users save and load plain ``*.h5`` files by layer name
(``model.keras_model.save_weights("mask_rcnn_cell.h5")``). This class keeps
that habit working: a path ending in ``.h5`` but not ``.weights.h5`` is
written and read by layer name in the Keras 2 / Matterport layout (the
checkpoint format, see `mrcnn.weights`); ``.weights.h5`` paths go to
Keras' own format. Any other ending raises a ``ValueError`` that says which
endings work.
"""

import os

import keras

from mrcnn.layers.walk import leaf_layers
from mrcnn.weights import load_weights_file, save_weights


def _is_matterport_path(filepath):
    path = os.fspath(filepath)
    return path.endswith(".h5") and not path.endswith(".weights.h5")


def _check_suffix(filepath):
    path = os.fspath(filepath)
    if not path.endswith(".h5"):
        raise ValueError(
            f"weights file {path!r}: use a name ending in '.h5' (by layer name, "
            f"Matterport's format, e.g. 'mask_rcnn_cell.h5') or '.weights.h5' (Keras 3's "
            f"format, loadable only into the same architecture)")


@keras.saving.register_keras_serializable(package="mrcnn")
class MaskRCNNModel(keras.Model):
    """A functional Keras model whose ``save_weights`` / ``load_weights`` also take ``*.h5``."""

    def get_layer(self, name=None, index=None):
        """Keras' ``get_layer``; a name not found at the top level is looked up inside nested models.

        Matterport's graph was flat but for the RPN; here the RPN (``rpn_model``),
        an EfficientNetV2 backbone and, on JAX, the mask head
        (``mrcnn_mask_buckets``, mrcnn.layers.row_buckets) hold their layers
        inside, and ``get_layer("rpn_conv_shared")`` or ``get_layer("mrcnn_mask")``
        still find them.
        """
        if name is None or index is not None:
            return super().get_layer(name=name, index=index)
        try:
            return super().get_layer(name=name)
        except ValueError:
            for layer in leaf_layers(self):
                if layer.name == name:
                    return layer
            raise

    def save_weights(self, filepath, overwrite=True, **kwargs):
        """Save the weights: ``*.h5`` by layer name (Matterport), ``*.weights.h5`` by Keras.

        Args:
            filepath: the file; its ending picks the format.
            overwrite: with False, an existing file is not replaced (FileExistsError).
        """
        _check_suffix(filepath)
        if not _is_matterport_path(filepath):
            return super().save_weights(filepath, overwrite=overwrite, **kwargs)
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"{os.fspath(filepath)} exists and overwrite=False")
        return save_weights(self, filepath)

    def load_weights(self, filepath, skip_mismatch=False, by_name=False, exclude=None,
                     **kwargs):
        """Load weights: ``*.h5`` by layer name (Matterport's ``by_name``), ``*.weights.h5`` by Keras.

        Args:
            filepath: the file.
            skip_mismatch: Keras' flag; for ``*.h5`` files it acts like ``by_name``
                (layers missing from the file or of another shape are skipped).
            by_name: Matterport's flag (``*.h5`` only).
            exclude: layer names / a regex / "heads" not to load (``*.h5`` only).

        Returns:
            for ``*.h5`` files the load report (``loaded``, ``excluded``,
            ``missing``, ``shape_mismatch``).
        """
        _check_suffix(filepath)
        if not _is_matterport_path(filepath):
            if by_name or exclude:
                raise ValueError(f"{os.fspath(filepath)} is a Keras 3 '.weights.h5' file "
                                 f"(stored by structure): load it without by_name/exclude")
            return super().load_weights(filepath, skip_mismatch=skip_mismatch, **kwargs)
        return load_weights_file(self, filepath, by_name=by_name or skip_mismatch,
                                 exclude=exclude)
