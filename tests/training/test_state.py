"""Training state beside a checkpoint (mrcnn/training/state.py): optimizer and random state."""

import os

import h5py
import keras
import numpy as np
import pytest

from mrcnn.training import state as st
from mrcnn.training.runs import state_path
from mrcnn.weights import save_weights


def model_and_optimizer(seed=0, momentum=0.9):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs), name="net")
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(rng.normal(size=tuple(v.shape)).astype("float32"))
    optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=momentum)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def set_slots(optimizer, seed):
    """Give every momentum slot and the step counter known values; returns them by key."""
    rng = np.random.default_rng(seed)
    values = {}
    for v in optimizer.variables:
        key = st.optimizer_key(v)
        if key.endswith("learning_rate"):
            continue
        value = (np.asarray(7 + seed, "int64") if key.endswith("iteration")
                 else rng.normal(size=tuple(v.shape)).astype("float32"))
        v.assign(value.astype(v.dtype))
        values[key] = value
    return values


def test_optimizer_key_drops_the_per_process_suffix():
    class V:
        def __init__(self, path):
            self.path = path
    assert st.optimizer_key(V("sgd_3/dense_kernel_momentum")) == "sgd/dense_kernel_momentum"
    assert st.optimizer_key(V("sgd/iteration")) == "sgd/iteration"
    assert st.optimizer_key(V("adam_w/net_dense_bias_velocity")) == "adam_w/net_dense_bias_velocity"
    assert st.optimizer_key(V("iteration")) == "iteration"


def test_state_round_trip_restores_slots_and_step_into_a_new_optimizer(tmp_path):
    model, optimizer = model_and_optimizer()
    saved = set_slots(optimizer, seed=1)
    ckpt = str(tmp_path / "mask_rcnn_net_0003.h5")
    save_weights(model, ckpt)
    path = st.save_state(state_path(ckpt), optimizer, model, ckpt, 3)
    assert path.endswith("train_state_net_0003.h5")
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]
    # the checkpoint itself still holds the weights only (Matterport's by-name layout)
    with h5py.File(ckpt, "r") as f:
        assert [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]] == [
            "dense"]

    read = st.read_state(path, ckpt)
    assert read["epoch"] == 3 and read["optimizer"] == "SGD"
    assert sorted(read["arrays"]["optimizer"]) == sorted(
        ["sgd/iteration", "sgd/learning_rate", "sgd/dense_kernel_momentum",
         "sgd/dense_bias_momentum"])

    _, fresh = model_and_optimizer(seed=5)       # a new process's optimizer: sgd_<n>/...
    assert all(float(np.abs(keras.ops.convert_to_numpy(v)).sum()) == 0
               for v in fresh.variables if "momentum" in v.path)
    report = st.restore_state(fresh, model, read["arrays"])
    assert sorted(report["restored"]) == sorted(saved) and report["fresh"] == []
    got = st.optimizer_arrays(fresh)
    for key, value in saved.items():
        np.testing.assert_array_equal(got[key], value)
    assert int(keras.ops.convert_to_numpy(fresh.iterations)) == 8
    assert float(keras.ops.convert_to_numpy(fresh.learning_rate)) == pytest.approx(0.1)


def test_slots_of_other_layers_start_from_zero_and_unused_ones_are_reported(tmp_path):
    model, optimizer = model_and_optimizer()
    set_slots(optimizer, seed=2)
    arrays = {"optimizer": st.optimizer_arrays(optimizer), "random": None}
    arrays["optimizer"]["sgd/other_kernel_momentum"] = np.ones(3, "float32")
    del arrays["optimizer"]["sgd/dense_bias_momentum"]
    _, fresh = model_and_optimizer()
    report = st.restore_state(fresh, model, arrays)
    assert report["fresh"] == ["sgd/dense_bias_momentum"]
    assert report["unused"] == ["sgd/other_kernel_momentum"]


def test_a_damaged_or_foreign_state_is_refused_by_name(tmp_path):
    model, optimizer = model_and_optimizer()
    set_slots(optimizer, seed=3)
    ckpt = str(tmp_path / "mask_rcnn_net_0001.h5")
    save_weights(model, ckpt)
    path = st.save_state(state_path(ckpt), optimizer, model, ckpt, 1)
    # other weights under the same name: the state is not theirs
    other, _ = model_and_optimizer(seed=9)
    save_weights(other, ckpt)
    with pytest.raises(st.StateFileError, match=r"train_state_net_0001\.h5 is not the training "
                                                r"state of .*mask_rcnn_net_0001\.h5"):
        st.read_state(path, ckpt)
    state, why = st.load_resume_state(ckpt)
    assert state is None and "fingerprint" in why
    st.read_state(path)                                   # no weights to match: reads
    # a changed value fails its SHA-256
    with h5py.File(path, "r+") as f:
        ds = f["optimizer"]["2"]
        ds[...] = ds[()] + 1
    with pytest.raises(st.StateFileError, match=r"is damaged: optimizer variable "
                                                r"'sgd/dense_kernel_momentum'"):
        st.read_state(path)
    with open(path, "r+b") as f:                          # truncated
        f.truncate(200)
    with pytest.raises(st.StateFileError, match=r"not a readable training-state file"):
        st.read_state(path)
    os.remove(path)
    assert st.load_resume_state(ckpt) == (None, "no training state train_state_net_0001.h5 "
                                                "beside it")
    assert st.load_resume_state(str(tmp_path / "weights.h5"))[0] is None
    with pytest.raises(FileNotFoundError, match="training state not found"):
        st.read_state(path)
