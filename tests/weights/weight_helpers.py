"""Helpers of the mrcnn.weights tests: weight files in the real formats, tiny models.

Every weight file is generated in the test: Keras-2 HDF5 with Matterport's
names, keras.applications' ResNet and EfficientNetV2 layouts, Keras 3
``.weights.h5``. Nothing touches the network.
"""

import h5py
import numpy as np

import mrcnn.model as modellib
from model_helpers import make_config


def randomize(variables, seed):
    rng = np.random.default_rng(seed)
    for v in variables:
        v.assign(rng.normal(size=tuple(v.shape)).astype("float32"))


def write_keras2_h5(path, layers):
    """Keras-2 ``save_weights`` layout: every layer listed, weight names ``layer/var:0``.

    Args:
        layers: list of (layer name, [(weight name, array)]); [] for weightless layers.
    """
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n, _ in layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.8.0"
        for name, items in layers:
            g = f.create_group(name)
            g.attrs["weight_names"] = np.array([w.encode() for w, _ in items])
            for w, arr in items:
                g.create_dataset(w, data=arr)
    return path


def keras2_layers_of(model):
    """(name, [(weight name, array)]) of every layer of a keras.applications model."""
    out = []
    for layer in model.layers:
        names = [f"{layer.name}/{v.name}:0" for v in layer.weights]
        out.append((layer.name, list(zip(names, layer.get_weights()))))
    return out


def tiny_model(tmp_path, mode="inference", **overrides):
    overrides.setdefault("IMAGES_PER_GPU", 1)
    return modellib.MaskRCNN(mode, make_config(**overrides), str(tmp_path / "logs"))


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
