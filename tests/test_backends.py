import inspect
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import jax_only, tensorflow_only, torch_only
from losslandscape.backends import SUPPORTED_BACKENDS, base
from losslandscape.datasets import prepare_data


@tensorflow_only
def test_missing_backend_names_the_extra_to_install():
    code = "import sys; sys.modules['tensorflow'] = None; import losslandscape; losslandscape.compute_surface"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "pip install 'losslandscape[tensorflow-cpu]'" in result.stderr


@tensorflow_only
def test_vectorized_map_converts_bitcast_without_a_per_point_loop():
    import tensorflow as tf

    import losslandscape.backends.tensorflow  # noqa: F401  (registers the rule)

    values = np.random.default_rng(0).normal(size=(5, 3, 4)).astype("float32")
    values[0, 0, 0] = -0.0
    as_int = tf.vectorized_map(lambda t: tf.bitcast(t, tf.int32), tf.constant(values), fallback_to_while_loop=False)
    np.testing.assert_array_equal(as_int.numpy(), values.view(np.int32))
    as_bytes = tf.vectorized_map(lambda t: tf.bitcast(t, tf.uint8), tf.constant(values), fallback_to_while_loop=False)
    np.testing.assert_array_equal(as_bytes.numpy(), values.view(np.uint8).reshape(5, 3, 4, 4))


@tensorflow_only
def test_rebatched_device_arrays_keep_every_sample_once():
    x = np.arange(10, dtype="float32")[:, None]
    batches = prepare_data((x, x), batch_size=3)
    wider = batches.with_min_batch_size(4)
    assert (batches.batch_size, wider.batch_size) == (3, 4)
    assert batches.with_min_batch_size(2).batch_size == 3
    seen = []
    wider.accumulate(lambda batch, state: seen.append(batch[0].numpy()) or state, 0)
    assert [len(b) for b in seen] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(seen), x)


@tensorflow_only
@pytest.mark.parametrize("static_shapes, traced_batch_sizes", [(True, [4, 2]), (False, [None])])
def test_device_batches_trace_the_step_once_unless_shapes_must_be_static(static_shapes, traced_batch_sizes):
    import tensorflow as tf

    x = np.arange(10, dtype="float32")[:, None]
    batches = prepare_data((x, 2 * x), batch_size=4)
    traced = []

    def step(batch, state):
        traced.append(batch[0].shape[0])
        return state[0] + tf.reduce_sum(batch[0]), state[1] + tf.shape(batch[0])[0], tf.maximum(state[2], tf.reduce_max(batch[1]))

    total, count, largest = tf.function(lambda: batches.accumulate(step, (0.0, 0, -1.0), static_shapes=static_shapes))()
    assert (float(total), int(count), float(largest)) == (45.0, 10, 18.0)
    assert traced == traced_batch_sizes  # one trace per loop body: the full batches' and the last one's, or one for all


@jax_only
@pytest.mark.parametrize("samples", [10, 9, 2])  # full batches and a short last one, full ones only, a short one only
def test_jax_batches_accumulate_over_every_sample_once(samples):
    import jax

    x = np.arange(samples, dtype="float32")[:, None]
    batches = prepare_data((x, 2 * x), batch_size=3)

    def step(batch, state):
        total, count, largest = state
        return total + batch[0].sum(), count + batch[0].shape[0], jax.numpy.maximum(largest, batch[1].max())

    total, count, largest = jax.jit(lambda arrays: batches.with_arrays(arrays).accumulate(step, (0.0, 0, -1.0)))(batches.arrays)
    assert (float(total), int(count), float(largest)) == (x.sum(), samples, 2 * x.max())


@jax_only
def test_jax_backend_reads_a_tf_dataset_once_and_refuses_to_stream():
    tf = pytest.importorskip("tensorflow")
    x = np.arange(10, dtype="float32")[:, None]
    dataset = tf.data.Dataset.from_tensor_slices((x, x)).shuffle(10, seed=0).batch(4)
    batches = prepare_data(dataset)
    assert (batches.num_samples, batches.batch_size) == (10, 4)
    np.testing.assert_array_equal(np.sort(np.asarray(batches.arrays[0]), axis=0), x)
    with pytest.raises(ValueError) as error:
        prepare_data(dataset, stream=True)
    assert str(error.value) == ("`stream=True` needs the TensorFlow backend: the JAX backend keeps the data in the "
                                "accelerator's memory. Set KERAS_BACKEND=tensorflow, or pass stream=False.")
    with pytest.raises(ValueError, match="^The dataset is empty"):
        prepare_data(dataset.take(0))
    ragged = tf.data.Dataset.from_generator(lambda: iter([(x[:4], x[:4]), (x[:3, :0], x[:3])]),
                                            output_signature=(tf.TensorSpec((None, None)), tf.TensorSpec((None, 1))))
    with pytest.raises(ValueError) as error:
        prepare_data(ragged)
    assert str(error.value).startswith(
        "The dataset's batches could not be joined into arrays (their shapes differ beyond the batch axis). "
        "The JAX backend needs arrays: pad them to one shape, or use the TensorFlow backend. (")


@pytest.mark.parametrize("name", SUPPORTED_BACKENDS)
def test_each_backend_implements_the_one_contract(name):
    backend = pytest.importorskip(f"losslandscape.backends.{name}").BACKEND
    assert isinstance(backend, base.Backend) and backend.name == name
    assert issubclass(backend.point_evaluator, base.PointEvaluator)
    assert issubclass(backend.vectorized_evaluator, base.PointEvaluator)
    assert issubclass(backend.hessian_vector_product, base.HessianVectorProduct)
    assert backend.out_of_memory_errors and all(issubclass(e, BaseException) for e in backend.out_of_memory_errors)
    shared = ["model", "batches", "origin", "directions", "include_regularization"]
    assert list(inspect.signature(backend.point_evaluator).parameters) == shared + ["variables"]
    assert list(inspect.signature(backend.vectorized_evaluator).parameters) == shared + ["points_per_call"]
    assert list(inspect.signature(backend.hessian_vector_product).parameters) == [
        "model", "batches", "include_regularization"
    ]


def test_a_backend_missing_a_method_cannot_be_built():
    class Incomplete(base.Backend):
        name = "incomplete"

        def device_description(self):
            return ""

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()


def test_the_data_is_hashed_once_however_often_a_run_asks(monkeypatch):
    x = np.arange(12, dtype="float32")[:, None]
    batches = prepare_data((x, x), batch_size=5)
    hashed = []
    monkeypatch.setattr(base, "content_hash", lambda nests: hashed.append(list(nests)) or "hash")
    assert batches.fingerprint() == batches.fingerprint() == "hash"
    (nest,) = hashed[0]  # the whole (x, y), as one nest
    assert len(hashed) == 1 and [np.asarray(leaf).shape for leaf in keras.tree.flatten(nest)] == [(12, 1), (12, 1)]


@tensorflow_only
def test_metrics_are_built_without_an_eager_step(monkeypatch):
    from losslandscape import random_directions
    from losslandscape.backends.tensorflow import CompiledPointEvaluator
    from model_zoo import mlp

    case = mlp()
    model = case.model
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])  # metrics not built again yet
    batches = prepare_data((case.x, case.y), batch_size=32)
    origin = [v.numpy() for v in model.trainable_variables]
    directions = random_directions(model, 2, seed=0)
    eager_steps = []
    original = type(model).test_step
    monkeypatch.setattr(type(model), "test_step", lambda self, batch: eager_steps.append(1) or original(self, batch))
    evaluator = CompiledPointEvaluator(model, batches, origin, directions)
    assert eager_steps == []
    monkeypatch.undo()
    found = evaluator.evaluate(np.zeros((1, 2)))[0]
    expected = model.evaluate(case.x, case.y, batch_size=32, verbose=0, return_dict=True)
    assert set(found) == {"loss", "accuracy"}
    np.testing.assert_allclose([found["loss"], found["accuracy"]], [expected["loss"], expected["accuracy"]], rtol=1e-5)


@tensorflow_only
@pytest.mark.slow
def test_the_librarys_import_of_tensorflow_prints_no_start_up_lines():
    import os

    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    code = "from losslandscape import compute_surface; import os; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "1\n"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=dict(env, TF_CPP_MIN_LOG_LEVEL="0"))
    assert "cpu_feature_guard" in shown.stderr  # a user's own level lets them through


class TestStartUpLinesHeldBack:
    """What a block writes to the stderr file descriptor is shown only if the block fails, not on Ctrl-C."""

    @pytest.fixture(autouse=True)
    def _no_user_level(self, monkeypatch):
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)

    @staticmethod
    def _write(text):
        import os

        os.write(2, text.encode())

    def test_held_back_when_the_block_succeeds(self, capfd):
        import os

        from losslandscape.backends import start_up_lines_held_back

        with start_up_lines_held_back():
            self._write("I0000 cpu_feature_guard.cc:227] start-up\n")
        self._write("after\n")
        assert capfd.readouterr().err == "after\n"
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"

    def test_shown_when_it_fails_and_dropped_when_interrupted(self, capfd, monkeypatch):
        from losslandscape.backends import start_up_lines_held_back

        with pytest.raises(ImportError, match="no backend"):
            with start_up_lines_held_back(log_level="2"):
                self._write("why it failed\n")
                raise ImportError("no backend")
        assert capfd.readouterr().err == "why it failed\n"
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
        with pytest.raises(KeyboardInterrupt):
            with start_up_lines_held_back():
                self._write("start-up\n")
                raise KeyboardInterrupt
        assert capfd.readouterr().err == ""

    def test_a_users_level_lets_them_through(self, capfd, monkeypatch):
        import os

        from losslandscape.backends import start_up_lines_held_back

        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
        with start_up_lines_held_back():
            self._write("start-up\n")
        assert capfd.readouterr().err == "start-up\n" and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


def test_full_precision_turns_reduced_float32_off_and_back_on():
    """On a CPU nothing is reduced; the backend's context still sets exact float32 inside and restores it after."""
    from losslandscape.backends import current_backend

    backend = current_backend()
    assert backend.why_float32_is_reduced() is None  # the tests run on CPUs
    name = keras.backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        read = tf.config.experimental.tensor_float_32_execution_enabled
    elif name == "jax":
        import jax

        def read():
            return jax.config.jax_default_matmul_precision not in ("highest", "float32")
    else:
        import torch

        def read():
            return torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32

        torch.backends.cuda.matmul.allow_tf32 = True
    before = read()
    with backend.full_precision():
        assert read() is False
    assert read() == before
    if name == "torch":
        torch.backends.cuda.matmul.allow_tf32 = False


@jax_only
@pytest.mark.parametrize("samples", [128, 1024])
def test_jax_measures_a_pass_from_its_compiled_plan(samples):
    """A 64-512-10 MLP's pass holds the hidden activations and the outputs in float32, and nothing more."""
    from losslandscape.backends import current_backend

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(512, activation="relu"), keras.layers.Dense(10)])
    batch = (np.zeros((samples, 64), "float32"), np.zeros((samples,), "int32"))
    assert current_backend().batch_memory(model, batch) == samples * (512 + 10) * 4
    assert current_backend().accelerator_memory() is None  # a CPU


@jax_only
def test_jax_reads_an_accelerators_memory_from_its_allocator(monkeypatch):
    """The pool's limit on a GPU; nothing on a CPU, or where the device reports no limit."""
    import jax

    from losslandscape.backends import current_backend

    class Device:
        def __init__(self, platform, stats):
            self.platform, self._stats = platform, stats

        def memory_stats(self):
            return self._stats

    cases = [("gpu", {"bytes_limit": 80 * 2**30, "bytes_in_use": 2**30}, 80 * 2**30),
             ("cpu", {"bytes_limit": 2**30}, None), ("gpu", {"bytes_in_use": 2**30}, None), ("gpu", None, None)]
    for platform, stats, expected in cases:
        monkeypatch.setattr(jax, "devices", lambda: [Device(platform, stats)])
        assert current_backend().accelerator_memory() == expected, (platform, stats)


@torch_only
def test_torch_reads_a_gpus_memory_and_a_passs_peak_above_what_was_held(monkeypatch):
    """CUDA's answers stubbed on a CPU: the device's whole memory, and the allocator's peak over one pass."""
    import torch

    from losslandscape.backends import current_backend

    backend = current_backend()
    assert backend.accelerator_memory() is None  # no CUDA here
    events = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda index: type("Properties", (), {"total_memory": 80 * 2**30 + index})())
    assert backend.accelerator_memory() == 80 * 2**30 + 1
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: events.append("synchronize"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: events.append("reset"))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda: 1_000)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: 5_000)

    class Model:
        def __call__(self, x, training):
            events.append(("pass", x.shape, training, torch.is_grad_enabled()))

    assert backend.batch_memory(Model(), (np.zeros((4, 3)), np.zeros(4))) == 4_000
    assert events == ["synchronize", "reset", ("pass", (4, 3), False, False), "synchronize"]


@torch_only
@pytest.mark.parametrize("matmul, cudnn", [(True, False), (False, True), (False, False)])
def test_torch_says_float32_is_reduced_when_either_tf32_switch_is_on_with_cuda(monkeypatch, matmul, cudnn):
    import torch

    from losslandscape.backends import current_backend

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
    try:
        reason = current_backend().why_float32_is_reduced()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    if matmul or cudnn:
        assert reason == "PyTorch runs float32 convolutions or matrix products on CUDA in TF32 (`allow_tf32`)"
    else:
        assert reason is None


@torch_only
def test_torch_says_what_to_do_when_the_data_does_not_fit_on_the_device(monkeypatch):
    import losslandscape.backends.torch as torch_backend

    def out_of_memory(value, dtype=None):
        raise torch_backend.OUT_OF_MEMORY_ERROR("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(torch_backend, "_to_device", out_of_memory)
    with pytest.raises(MemoryError) as error:
        prepare_data((np.zeros((8, 3), "float32"), np.zeros(8, "float32")))
    assert str(error.value) == ("The data does not fit in the accelerator's memory, where the torch backend keeps it. "
                                "Pass `max_samples=` to evaluate on fewer samples. (CUDA out of memory. Tried to "
                                "allocate 2.00 GiB)")


@jax_only
def test_jax_says_what_to_do_when_the_data_does_not_fit_on_the_device(monkeypatch):
    import jax

    def out_of_memory(arrays):
        raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 2147483648 bytes.")

    monkeypatch.setattr(jax, "device_put", out_of_memory)
    with pytest.raises(MemoryError) as error:
        prepare_data((np.zeros((8, 3), "float32"), np.zeros(8, "float32")))
    assert str(error.value) == (
        "The data does not fit in the accelerator's memory, where the JAX backend keeps it. Pass `max_samples=` to "
        "evaluate on fewer samples, or use the TensorFlow backend with a tf.data.Dataset and `stream=True`. "
        "(RESOURCE_EXHAUSTED: Out of memory allocating 2147483648 bytes.)")


@jax_only
@pytest.mark.parametrize("precision, reduced", [(None, True), ("bfloat16", True), ("highest", False), ("float32", False)])
def test_jax_says_float32_is_reduced_on_an_accelerator_unless_matmuls_are_at_full_precision(monkeypatch, precision,
                                                                                           reduced):
    import jax

    from losslandscape.backends import current_backend

    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    saved = jax.config.jax_default_matmul_precision
    jax.config.update("jax_default_matmul_precision", precision)
    try:
        reason = current_backend().why_float32_is_reduced()
    finally:
        jax.config.update("jax_default_matmul_precision", saved)
    if reduced:
        assert reason == (f"JAX's default matmul precision ({precision or 'default'}) rounds float32 products on gpu "
                          "(TF32 on NVIDIA GPUs)")
    else:
        assert reason is None


@tensorflow_only
@pytest.mark.parametrize("gpus, tf32, reduced", [(["GPU:0"], True, True), (["GPU:0"], False, False), ([], True, False)])
def test_tensorflow_says_float32_is_reduced_with_a_gpu_and_tf32_on(monkeypatch, gpus, tf32, reduced):
    import tensorflow as tf

    from losslandscape.backends import current_backend

    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: gpus if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "tensor_float_32_execution_enabled", lambda: tf32)
    reason = current_backend().why_float32_is_reduced()
    assert reason == ("TensorFlow runs float32 convolutions and matrix products on the GPU in TF32" if reduced else None)


@tensorflow_only
@pytest.mark.parametrize("fits", [True, False])
def test_tensorflow_copies_the_data_to_a_gpu_when_it_fits_there_and_keeps_it_on_the_host_otherwise(monkeypatch, fits):
    import tensorflow as tf

    import losslandscape.backends.tensorflow as tensorflow_backend

    copied = []
    identity = tf.identity

    def copy_to_the_gpu(value):
        copied.append(value.shape)
        if not fits:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return identity(value)

    monkeypatch.setattr(tensorflow_backend, "has_gpu", lambda: True)
    monkeypatch.setattr(tf, "identity", copy_to_the_gpu)
    x, y = np.arange(24, dtype="float32").reshape(8, 3), np.arange(8, dtype="float32")
    batches = prepare_data((x, y), batch_size=4)
    assert copied == ([(8, 3), (8,)] if fits else [(8, 3)])
    np.testing.assert_array_equal(batches.arrays[0].numpy(), x)
    np.testing.assert_array_equal(batches.arrays[1].numpy(), y)
    assert all(isinstance(array, tf.Tensor) for array in batches.arrays)


@torch_only
def test_torch_names_each_gpu_in_its_device_description(monkeypatch):
    import torch

    from losslandscape.backends import current_backend

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"NVIDIA H100 #{index}")
    assert current_backend().device_description().endswith("devices: ['NVIDIA H100 #0', 'NVIDIA H100 #1']")


@tensorflow_only
def test_the_bitcast_rule_is_registered_where_tensorflow_has_none_and_only_once():
    from tensorflow.python.ops.parallel_for import pfor

    import losslandscape.backends.tensorflow as tensorflow_backend

    registry = pfor._pfor_converter_registry
    rule = registry.pop("Bitcast")
    try:
        tensorflow_backend._vectorize_bitcast()
        registered = registry["Bitcast"]
        assert registered is not rule
        tensorflow_backend._vectorize_bitcast()  # TensorFlow's own rule, or one already registered, is kept
        assert registry["Bitcast"] is registered
    finally:
        registry["Bitcast"] = rule


@tensorflow_only
def test_tensorflow_names_each_gpu_in_its_device_description(monkeypatch):
    import tensorflow as tf

    from losslandscape.backends import current_backend

    gpus = [tf.config.PhysicalDevice(name=f"/physical_device:GPU:{i}", device_type="GPU") for i in range(2)]
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else [])
    assert current_backend().device_description().endswith(
        "GPUs: ['/physical_device:GPU:0', '/physical_device:GPU:1']")


@tensorflow_only
def test_tensorflow_checks_k_points_against_one_point_per_call_run_eagerly_on_large_batches(monkeypatch):
    from losslandscape.backends import current_backend
    from losslandscape.backends.tensorflow import UNCOMPILED_MIN_BATCH_SIZE, DeviceBatches

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(loss="mse")
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(5000, 2)).astype("float32"), rng.normal(size=(5000, 1)).astype("float32")
    batches = prepare_data((x, y), batch_size=32)
    direction = [[np.ones_like(v.numpy()) for v in model.trainable_variables]]
    origin = [v.numpy() for v in model.trainable_variables]
    evaluator = current_backend().point_evaluator(model, batches, origin, direction)
    sizes = []
    sized_slice = DeviceBatches._sized_slice
    monkeypatch.setattr(DeviceBatches, "_sized_slice",
                        lambda self, start, size: (sizes.append(int(size)), sized_slice(self, start, size))[1])
    values = evaluator.evaluate_uncompiled(np.array([[0.0], [0.5]]))
    assert sizes == [UNCOMPILED_MIN_BATCH_SIZE, 5000 - UNCOMPILED_MIN_BATCH_SIZE] * 2
    for value, step in zip(values, [0.0, 0.5]):
        kernel, bias = (w + step for w in origin)
        assert value["loss"] == pytest.approx(np.mean((x @ kernel + bias - y) ** 2), rel=1e-5)


@tensorflow_only
@pytest.mark.parametrize("shape, batch_size", [((5000, 4, 8), 2048), ((40000, 1), 65536), ((300, 64, 64), 32)])
def test_tensorflow_batches_small_inputs_so_that_a_step_of_k_points_reads_enough_values(monkeypatch, shape,
                                                                                         batch_size):
    """K = 8 points and at least 2**19 input values a step: 2048 samples of 32 values, 65536 of one value; images
    keep the batch size given (32)."""
    from losslandscape.backends import current_backend
    from losslandscape.backends.tensorflow import MIN_INPUT_VALUES_PER_STEP, DeviceBatches

    assert MIN_INPUT_VALUES_PER_STEP == 2**19
    model = keras.Sequential([keras.Input(shape[1:]), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile(loss="mse")
    batches = prepare_data((np.ones(shape, "float32"), np.ones((shape[0], 1), "float32")), batch_size=32)
    requested = []
    with_min_batch_size = DeviceBatches.with_min_batch_size
    monkeypatch.setattr(DeviceBatches, "with_min_batch_size",
                        lambda self, size: (requested.append(size), with_min_batch_size(self, size))[1])
    origin = [v.numpy() for v in model.trainable_variables]
    current_backend().vectorized_evaluator(model, batches, origin, [[np.ones_like(w) for w in origin]] * 2,
                                           points_per_call=8)
    assert max(32, *requested) == batch_size


@tensorflow_only
def test_tensorflow_compiles_k_points_with_xla_where_it_sees_a_gpu(monkeypatch, small_mlp, regression_data):
    import tensorflow as tf

    import losslandscape.backends.tensorflow as tensorflow_backend

    assert tensorflow_backend.has_gpu() is False
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    assert tensorflow_backend.has_gpu() is True
    origin = [v.numpy() for v in small_mlp.trainable_variables]
    directions = [[np.ones_like(w) for w in origin]] * 2
    evaluator = tensorflow_backend.VectorizedPointEvaluator(small_mlp, prepare_data(regression_data), origin,
                                                            directions, points_per_call=2)
    assert evaluator.uses_xla is None  # XLA is tried at the first call
    evaluator.evaluate(np.zeros((2, 2)))
    assert evaluator.uses_xla is True


def test_a_loaders_batches_are_joined_and_ragged_ones_are_refused_with_the_backends_hint():
    from losslandscape.backends.base import join_batches

    first = (np.arange(6.0).reshape(3, 2), np.zeros(3))
    arrays, batch_size = join_batches([first, (np.ones((1, 2)), np.ones(1))], "Use arrays.")
    np.testing.assert_array_equal(arrays[0], np.vstack([first[0], np.ones((1, 2))]))
    np.testing.assert_array_equal(arrays[1], [0.0, 0.0, 0.0, 1.0])
    assert batch_size == 3 and join_batches([], "Use arrays.") is None
    message = ("The dataset's batches could not be joined into arrays (their shapes differ beyond the batch axis). "
               "Use arrays. (")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        join_batches([first, (np.ones((1, 5)), np.ones(1))], "Use arrays.")


def test_the_device_description_names_the_frameworks_version_and_the_devices_it_computes_on():
    from losslandscape.backends import current_backend

    description = current_backend().device_description()
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
        assert description == f"TensorFlow {tf.__version__}, GPUs: {gpus or 'none'}"
    elif backend == "jax":
        import jax

        assert description == f"JAX {jax.__version__}, devices: {[str(d) for d in jax.devices()]}"
    else:
        import torch

        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        threads = torch.get_num_threads()
        assert description == f"PyTorch {torch.__version__}, {threads} threads, devices: {gpus or ['cpu']}"


def test_a_keras_backend_the_library_does_not_support_is_named_with_the_fix(monkeypatch):
    from losslandscape.backends import current_backend

    monkeypatch.setattr(keras.backend, "backend", lambda: "numpy")
    with pytest.raises(NotImplementedError) as error:
        current_backend()
    assert str(error.value) == ("losslandscape supports the Keras backends ('tensorflow', 'jax', 'torch'), but Keras "
                                "runs on 'numpy'. Set the environment variable KERAS_BACKEND=tensorflow, jax or torch "
                                "before importing keras.")
