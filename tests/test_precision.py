import re

import keras
import numpy as np
import pytest

from conftest import all_state, assert_same_state, trained_classifier, same_on_every_backend
from losslandscape import compute_surface, random_directions
from losslandscape.precision import with_dtype_policy

AXIS = np.linspace(-0.5, 0.5, 3)


@pytest.fixture(scope="module")
def classifier():
    return trained_classifier(samples=256, features=12, hidden=16)


def test_copy_computes_in_bfloat16_with_the_same_weights_and_compile(classifier):
    model, _, _ = classifier
    before = all_state(model)
    copy = with_dtype_policy(model, "mixed_bfloat16")
    assert_same_state(before, all_state(model))
    assert model.layers[0].compute_dtype == "float32"
    assert [layer.compute_dtype for layer in copy.layers] == ["bfloat16", "bfloat16"]
    assert [v.dtype for v in copy.trainable_variables] == [v.dtype for v in model.trainable_variables]
    for ours, theirs in zip(copy.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    assert [m.name for m in copy.metrics] == [m.name for m in model.metrics]


def test_bfloat16_surface_equals_a_model_built_under_the_policy(classifier):
    model, x, y = classifier
    directions = random_directions(model, seed=3)
    before = all_state(model)
    low = compute_surface(model, (x, y), directions, xcoords=AXIS, dtype_policy="mixed_bfloat16", verbose=0)
    assert_same_state(before, all_state(model))
    full = compute_surface(model, (x, y), directions, xcoords=AXIS, verbose=0)
    assert low.settings["dtype_policy"] == "mixed_bfloat16"

    # Independently: the user's own way, a model built under the global policy, at θ0.
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        built = keras.Sequential(
            [keras.Input((12,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2, activation="softmax")]
        )
    finally:
        keras.config.set_dtype_policy(previous)
    built.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    built.set_weights(model.get_weights())
    expected = built.evaluate(x, y, batch_size=128, verbose=0, return_dict=True)
    np.testing.assert_allclose(low.losses["train"][1, 1], expected["loss"], rtol=1e-5)

    relative = np.abs(low.losses["train"] - full.losses["train"]) / full.losses["train"]
    assert relative.max() > 1e-5  # really computed in bfloat16
    assert relative.max() < 3e-2


def test_resuming_under_another_policy_is_refused(classifier, tmp_path):
    model, x, y = classifier
    path = tmp_path / "surface.h5"
    compute_surface(model, (x, y), xcoords=AXIS, seed=0, path=path, dtype_policy="mixed_bfloat16", verbose=0)
    with pytest.raises(ValueError, match="dtype_policy"):
        compute_surface(model, (x, y), xcoords=AXIS, seed=0, path=path, verbose=0)


@same_on_every_backend
def test_bad_policies_and_models_get_clear_errors(classifier):
    model, x, y = classifier
    with pytest.raises(ValueError, match="Unknown `dtype_policy`"):
        with_dtype_policy(model, "bfloat15")
    quantizes = ("`dtype_policy` 'int8_from_float32' quantizes the weights, so the directions would not apply to "
                 'them; use "mixed_bfloat16" or "mixed_float16".')
    with pytest.raises(ValueError, match=f"^{re.escape(quantizes)}$"):
        with_dtype_policy(model, "int8_from_float32")

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

    subclassed = Subclassed()
    subclassed.compile(loss="mse")
    subclassed(x[:1])
    advice = ("It needs a Sequential or functional model compiled with serializable losses and metrics; otherwise "
              "build the model under the policy yourself (`keras.config.set_dtype_policy`) and leave `dtype_policy` "
              "unset.")
    with pytest.raises(ValueError, match=f"^Could not rebuild the model under `dtype_policy='mixed_bfloat16'`: .*"
                                         f"{re.escape(advice)}$"):
        with_dtype_policy(subclassed, "mixed_bfloat16")
