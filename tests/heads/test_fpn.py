"""Tests of mrcnn.heads.fpn.build_fpn: shapes, Matterport's layer names and
the top-down pathway against a NumPy reference."""

import keras
import numpy as np
import pytest

from mrcnn.heads.fpn import build_fpn

MATTERPORT_NAMES = ["fpn_c5p5", "fpn_c4p4", "fpn_c3p3", "fpn_c2p2",
                    "fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5", "fpn_p6"]


def _fpn_model(size, strides, channels=(3, 4, 5, 6), pyramid_size=8):
    inputs = [keras.Input(shape=(size // s, size // s, c), batch_size=2,
                          name=f"c{i + 2}")
              for i, (s, c) in enumerate(zip(strides, channels))]
    return keras.Model(inputs, build_fpn(*inputs, pyramid_size=pyramid_size))


@pytest.mark.parametrize("strides", [(4, 8, 16, 32), (2, 4, 8, 16)],
                         ids=["first-stride-2", "first-stride-1"])
def test_output_shapes(strides):
    """P2..P5 keep the C2..C5 grids, P6 halves P5; all pyramid_size deep."""
    size = 128
    model = _fpn_model(size, strides)
    expected = [(2, size // s, size // s, 8) for s in strides]
    expected.append((2, size // strides[-1] // 2, size // strides[-1] // 2, 8))
    assert [tuple(o.shape) for o in model.outputs] == expected
    rng = np.random.default_rng(0)
    data = [rng.normal(size=(2,) + tuple(i.shape[1:])).astype("f4")
            for i in model.inputs]
    out = model.predict_on_batch(data)
    assert [o.shape for o in out] == expected


def test_matterport_layer_names():
    model = _fpn_model(64, (4, 8, 16, 32))
    names = {layer.name for layer in model.layers}
    assert set(MATTERPORT_NAMES) <= names
    for name in ("fpn_c5p5", "fpn_c4p4", "fpn_c3p3", "fpn_c2p2"):
        assert model.get_layer(name).kernel.shape[:2] == (1, 1)
    for name in ("fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5"):
        assert model.get_layer(name).kernel.shape == (3, 3, 8, 8)
    assert all(n.startswith("fpn_") for n in names - {"c2", "c3", "c4", "c5"})


def _conv1x1(x, kernel, bias):
    return np.einsum("bhwc,cd->bhwd", x, kernel[0, 0]) + bias


def _conv3x3_same(x, kernel, bias):
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, w = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],)) + bias
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("bhwc,cd->bhwd",
                             padded[:, dy:dy + h, dx:dx + w], kernel[dy, dx])
    return out


def _upsample2(x):
    return np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)


def test_top_down_sum_matches_numpy():
    """Random weights: P_l = conv3x3(up2(M_{l+1}) + conv1x1(C_l))."""
    model = _fpn_model(64, (4, 8, 16, 32))
    rng = np.random.default_rng(1)
    weights = {}
    for name in MATTERPORT_NAMES[:-1]:
        layer = model.get_layer(name)
        kernel = rng.normal(0, 0.3, size=layer.kernel.shape).astype("f4")
        bias = rng.normal(0, 0.3, size=layer.bias.shape).astype("f4")
        layer.set_weights([kernel, bias])
        weights[name] = (kernel.astype(np.float64), bias.astype(np.float64))
    data = [rng.normal(size=(2,) + tuple(i.shape[1:])).astype("f4")
            for i in model.inputs]
    p2, p3, p4, p5, p6 = model.predict_on_batch(data)

    c2, c3, c4, c5 = (d.astype(np.float64) for d in data)
    m5 = _conv1x1(c5, *weights["fpn_c5p5"])
    m4 = _upsample2(m5) + _conv1x1(c4, *weights["fpn_c4p4"])
    m3 = _upsample2(m4) + _conv1x1(c3, *weights["fpn_c3p3"])
    m2 = _upsample2(m3) + _conv1x1(c2, *weights["fpn_c2p2"])
    for got, merged, name in ((p2, m2, "fpn_p2"), (p3, m3, "fpn_p3"),
                              (p4, m4, "fpn_p4"), (p5, m5, "fpn_p5")):
        np.testing.assert_allclose(
            got, _conv3x3_same(merged, *weights[name]), rtol=1e-4, atol=1e-4,
            err_msg=name)
    # P6 is P5 subsampled by 2 (the top-left cell of each 2x2 block).
    np.testing.assert_array_equal(p6, p5[:, ::2, ::2])


def test_identity_weights_give_plain_sums():
    """Identity 1x1 kernels and centre-tap 3x3 kernels, zero biases: P2 is
    C2 plus C3, C4, C5 nearest-upsampled to its grid."""
    channels = (8, 8, 8, 8)
    model = _fpn_model(32, (4, 8, 16, 32), channels=channels)
    eye = np.eye(8, dtype="f4")
    for name in MATTERPORT_NAMES[:4]:
        model.get_layer(name).set_weights([eye[None, None], np.zeros(8, "f4")])
    centre = np.zeros((3, 3, 8, 8), "f4")
    centre[1, 1] = eye
    for name in MATTERPORT_NAMES[4:8]:
        model.get_layer(name).set_weights([centre, np.zeros(8, "f4")])
    rng = np.random.default_rng(2)
    c2, c3, c4, c5 = (rng.normal(size=(2,) + tuple(i.shape[1:])).astype("f4")
                      for i in model.inputs)
    p2, p3, p4, p5, p6 = model.predict_on_batch([c2, c3, c4, c5])
    np.testing.assert_allclose(p5, c5, atol=1e-6)
    np.testing.assert_allclose(p4, c4 + _upsample2(c5), atol=1e-5)
    np.testing.assert_allclose(p3, c3 + _upsample2(c4 + _upsample2(c5)),
                               atol=1e-5)
    np.testing.assert_allclose(
        p2, c2 + _upsample2(c3 + _upsample2(c4 + _upsample2(c5))), atol=1e-5)
    np.testing.assert_array_equal(p6, p5[:, ::2, ::2])
