"""The private Keras attributes losslandscape reads: still there, and read in keras_internals.py only."""

import ast
import pathlib

import keras
import numpy as np
import pytest

import losslandscape
from losslandscape import keras_internals

PACKAGE = pathlib.Path(losslandscape.__file__).parent


@pytest.fixture
def compiled_model():
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(2)(keras.layers.Dense(4, name="hidden")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(loss="mse", metrics=["mae"])
    return model


def test_every_private_attribute_is_still_there(compiled_model):
    model = compiled_model
    batch = (np.ones((2, 3), "float32"), np.zeros((2, 2), "float32"))
    keras_internals.build_for_batch(model, batch)
    assert [m.name for m in model.metrics] == ["loss", "compile_metrics"]
    loss = keras_internals.compiled_loss(model)(batch[1], model(batch[0]))
    np.testing.assert_allclose(float(loss), np.mean(keras.ops.convert_to_numpy(model(batch[0])) ** 2), rtol=1e-6)
    assert isinstance(keras_internals.loss_tracker(model), keras.metrics.Mean)
    assert keras_internals.call_takes_training(model) is True
    layers = list(keras_internals.layers_outermost_first(model))
    assert layers[0] is model and model.get_layer("hidden") in layers
    nodes = keras_internals.inbound_nodes(model.get_layer("hidden"))
    assert nodes and nodes[0].input_tensors[0] is model.inputs[0]


def test_torch_convolutions_run_without_the_memory_format_switch_and_get_it_back():
    pytest.importorskip("torch")
    import importlib

    module = importlib.import_module("keras.src.backend.torch.nn")
    original = module._maybe_convert_to_channels_last
    with keras_internals.torch_convolutions_without_memory_format():
        marker = object()
        assert module._maybe_convert_to_channels_last(marker) is marker
    assert module._maybe_convert_to_channels_last is original


def test_only_a_model_with_several_outputs_tracks_a_loss_per_output(compiled_model):
    inputs = keras.Input((3,))
    two_outputs = keras.Model(inputs, {"a": keras.layers.Dense(1)(inputs), "b": keras.layers.Dense(1)(inputs)})
    two_outputs.compile(loss={"a": "mse", "b": "mae"})
    x = np.ones((2, 3), "float32")
    keras_internals.build_for_batch(compiled_model, (x, np.zeros((2, 2), "float32")))
    keras_internals.build_for_batch(two_outputs, (x, {"a": np.zeros((2, 1), "float32"), "b": np.zeros((2, 1), "float32")}))
    assert keras_internals.tracks_loss_per_output(compiled_model) is False
    assert keras_internals.tracks_loss_per_output(two_outputs) is True
    assert keras_internals.tracks_loss_per_output(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])) is False


def test_an_uncompiled_model_has_no_compiled_loss():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert keras_internals.compiled_loss(model) is None


@pytest.mark.parametrize(
    "accessor",
    ["compiled_loss", "tracks_loss_per_output", "loss_tracker", "call_takes_training", "layers_outermost_first",
     "inbound_nodes"],
)
def test_a_missing_attribute_names_itself_and_the_keras_version(accessor):
    with pytest.raises(RuntimeError) as error:
        getattr(keras_internals, accessor)(object())
    message = str(error.value)
    assert f"Keras {keras.__version__} has no `object._" in message
    assert keras_internals.TESTED_KERAS in message


def _private_reads(path: pathlib.Path) -> list[str]:
    """`name._attr` reads in a module where `name` is neither self, cls, super() nor defined in the module."""
    tree = ast.parse(path.read_text())
    own_names = {node.name for node in ast.walk(tree) if isinstance(node, (ast.ClassDef, ast.FunctionDef))}
    reads = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
            continue
        owner = node.value
        while isinstance(owner, ast.Attribute) and owner.attr.startswith("_"):
            owner = owner.value  # self._model._compile_loss reads `_compile_loss` of `self._model`
        if isinstance(node.value, ast.Attribute) and node.value.attr.startswith("_"):
            reads.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif isinstance(owner, ast.Name) and owner.id not in {"self", "cls"} | own_names:
            reads.append(f"{path.name}:{node.lineno} {owner.id}.{node.attr}")
        elif isinstance(owner, ast.Call) and not (isinstance(owner.func, ast.Name) and owner.func.id == "super"):
            reads.append(f"{path.name}:{node.lineno} ().{node.attr}")
    return reads


def test_private_attributes_are_read_in_keras_internals_only():
    reads = [
        read
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "keras_internals.py"
        for read in _private_reads(path)
    ]
    assert reads == [], f"private attributes read outside keras_internals.py: {reads}"


def test_the_guard_sees_a_private_read(tmp_path):
    module = tmp_path / "module.py"
    module.write_text("def f(model, self):\n    return model._compile_loss, self._model._loss_tracker, self._x\n")
    assert _private_reads(module) == ["module.py:2 model._compile_loss", "module.py:2 ._loss_tracker"]


def test_layers_nested_at_any_depth_come_after_the_layers_holding_them():
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="deep")], name="inner")
    middle = keras.Sequential([keras.Input((3,)), inner], name="middle")
    outer = keras.Sequential([keras.Input((3,)), middle, keras.layers.Dense(1, name="head")], name="outer")
    names = [layer.name for layer in keras_internals.layers_outermost_first(outer)]
    assert names[0] == "outer" and {"outer", "middle", "inner", "deep", "head"} <= set(names)
    assert names.index("middle") < names.index("inner") < names.index("deep")
