"""Tests of tests/helpers.py: run_layer_test passes good layers and fails
deliberately broken ones."""

import keras
import numpy as np
import pytest
from keras import ops

from helpers import normalize_config, run_layer_test


class Scale(keras.layers.Layer):
    """x * factor: a correct layer with one argument."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = float(factor)

    def call(self, x):
        return x * self.factor

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class Affine(keras.layers.Layer):
    """x @ kernel + bias with weights created in build()."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                      initializer="random_normal")
        self.bias = self.add_weight(shape=(self.units,),
                                    initializer="random_normal")

    def call(self, x):
        return ops.matmul(x, self.kernel) + self.bias

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class SplitArgmax(keras.layers.Layer):
    """[x, y] -> [x + y, argmax(x) int32]: two inputs, two outputs, spec."""

    def __init__(self, pool_shape=(2, 3), **kwargs):
        super().__init__(**kwargs)
        # Stored as a NumPy array: the config holds an array, compared by value.
        self.pool_shape = np.asarray(pool_shape)

    def call(self, inputs):
        x, y = inputs
        return [x + y, ops.cast(ops.argmax(x, axis=-1), "int32")]

    def compute_output_shape(self, input_shape):
        x_shape = tuple(input_shape[0])
        return [x_shape, x_shape[:-1]]

    def compute_output_spec(self, inputs):
        x = inputs[0]
        return [keras.KerasTensor(x.shape, dtype=x.dtype),
                keras.KerasTensor(x.shape[:-1], dtype="int32")]

    def get_config(self):
        return {**super().get_config(), "pool_shape": self.pool_shape}


class SeededNoise(keras.layers.Layer):
    """x + uniform noise from a seeded generator (new noise every call)."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x):
        return x + keras.random.uniform(ops.shape(x), seed=self.seed_generator)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


# ------------------------------------------------------- broken layers


class WrongOutputShape(Scale):
    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (input_shape[-1] + 1,)


class NoOutputShape(keras.layers.Layer):
    def call(self, x):
        return x + 1.0


class WrongSpecDtype(SplitArgmax):
    def compute_output_spec(self, inputs):
        x = inputs[0]
        return [keras.KerasTensor(x.shape, dtype=x.dtype),
                keras.KerasTensor(x.shape[:-1], dtype="float32")]


class DropsArgument(Scale):
    """get_config forgets `factor`: a clone silently gets the default."""

    def get_config(self):
        config = super().get_config()
        del config["factor"]
        return config


class NotRecreatable(keras.layers.Layer):
    """get_config stores `size` as a string that __init__ rejects."""

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(size, int):
            raise TypeError(f"size must be an int; got {size!r}.")
        self.size = size

    def call(self, x):
        return x[..., :self.size]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.size,)

    def get_config(self):
        return {**super().get_config(), "size": str(self.size)}


class DriftingConfig(Scale):
    """Each round trip doubles `factor`: the clone's config differs."""

    def get_config(self):
        return {**super().get_config(), "factor": self.factor / 2}


class IgnoresConfig(keras.layers.Layer):
    """A random offset drawn in __init__, in no config and no weight."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.offset = float(np.random.default_rng().uniform(1, 2))

    def call(self, x):
        return x + self.offset

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


class Opaque:
    """Not serializable by Keras."""


class UnsavableConfig(Scale):
    """A config value Keras cannot write to a .keras file."""

    def __init__(self, factor=2.0, lock=None, **kwargs):
        super().__init__(factor, **kwargs)
        self.lock = lock

    def get_config(self):
        return {**super().get_config(), "lock": self.lock}


X = np.arange(12, dtype="float32").reshape(2, 2, 3)


def test_normalize_config_compares_by_value():
    assert normalize_config({"a": (1, 2), "b": np.array([[1.5], [2]]),
                             "c": np.int64(3), "d": [np.float32(0.5)]}) == {
        "a": [1, 2], "b": [[1.5], [2.0]], "c": 3, "d": [0.5]}
    assert normalize_config({"a": (1, 2)}) != normalize_config({"a": (1, 3)})
    assert normalize_config({"a": np.array([1, 2])}) != normalize_config(
        {"a": [1, 2, 3]})
    assert type(normalize_config(np.int64(3))) is int


def test_good_layers_pass():
    out = run_layer_test(Scale(3.0, name="scale"), X,
                         expected_output_shape=(2, 2, 3),
                         expected_output_dtype="float32")
    np.testing.assert_allclose(out, 3 * X)
    run_layer_test(Affine(4), X, expected_output_shape=(2, 2, 4))
    y = np.ones_like(X)
    sums, argmax = run_layer_test(
        SplitArgmax(np.array([4, 5])), [X, y],
        expected_output_shape=[(2, 2, 3), (2, 2)],
        expected_output_dtype=["float32", "int32"])
    np.testing.assert_allclose(sums, X + 1)
    np.testing.assert_array_equal(argmax, np.full((2, 2), 2))
    out = run_layer_test(SeededNoise(seed=5), X)
    assert np.all((out >= X) & (out < X + 1)) and np.any(out != X)


def test_weights_are_copied_to_the_clone():
    # Random initial weights: only a weight copy makes the clone agree.
    layer = Affine(3)
    layer.build(X.shape)
    layer.set_weights([np.eye(3, dtype="float32"), np.ones(3, "float32")])
    np.testing.assert_allclose(run_layer_test(layer, X), X + 1)


def test_wrong_compute_output_shape_fails():
    with pytest.raises(AssertionError, match="compute_output_shape"):
        run_layer_test(WrongOutputShape(), X)


def test_missing_compute_output_shape_fails():
    with pytest.raises(AssertionError, match="compute_output_shape"):
        run_layer_test(NoOutputShape(), X)


def test_wrong_expected_shape_or_dtype_fails():
    with pytest.raises(AssertionError, match="expected"):
        run_layer_test(Scale(), X, expected_output_shape=(2, 2, 4))
    with pytest.raises(AssertionError, match="expected"):
        run_layer_test(Scale(), X, expected_output_shape=[(2, 2, 3)])
    with pytest.raises(AssertionError, match="dtypes"):
        run_layer_test(Scale(), X, expected_output_dtype="int32")


def test_wrong_compute_output_spec_dtype_fails():
    with pytest.raises(AssertionError, match="compute_output_spec"):
        run_layer_test(WrongSpecDtype(), [X, X])


def test_get_config_that_drops_an_argument_fails():
    with pytest.raises(AssertionError, match="factor"):
        run_layer_test(DropsArgument(3.0), X)
    # Declared on purpose: the config check passes, but the clone (factor
    # 2.0) computes something else than the original (factor 3.0).
    with pytest.raises(AssertionError, match="clone"):
        run_layer_test(DropsArgument(3.0), X, config_exclude=("factor",))


def test_layer_that_cannot_be_recreated_from_its_config_fails():
    with pytest.raises(AssertionError, match="from_config"):
        run_layer_test(NotRecreatable(2), X)


def test_config_that_changes_in_the_round_trip_fails():
    with pytest.raises(AssertionError, match="factor"):
        run_layer_test(DriftingConfig(3.0), X)


def test_state_outside_the_config_fails():
    with pytest.raises(AssertionError, match="clone"):
        run_layer_test(IgnoresConfig(), X)


def test_unsavable_config_fails_only_the_saving_check():
    layer = UnsavableConfig(lock=Opaque())
    run_layer_test(layer, X, run_saving=False)
    with pytest.raises(AssertionError, match="saving or loading"):
        run_layer_test(UnsavableConfig(lock=Opaque()), X)


def test_rejects_non_layers_and_non_numpy_inputs():
    with pytest.raises(TypeError, match="keras.layers.Layer"):
        run_layer_test(lambda x: x, X)
    with pytest.raises(TypeError, match="NumPy"):
        run_layer_test(Scale(), X.tolist())


@pytest.mark.backend_independent
def test_without_device_count_keeps_the_other_xla_flags():
    from helpers import without_device_count
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0"}
    assert without_device_count(env) == {"XLA_FLAGS": "--xla_backend_optimization_level=0"}
    assert without_device_count({"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}) == {}
    assert without_device_count({"A": "1"}) == {"A": "1"}
    both = "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0"
    assert without_device_count({"XLA_FLAGS": both, "A": "1"}, default_optimisation=True) \
        == {"A": "1"}
