import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")
# Under pytest-xdist each worker shares the machine's cores with the others: one thread per operation each, as
# thread pools that outnumber the cores spend their time waiting for each other. Subprocesses inherit this.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") != "1":
    for _name, _value in (("TF_NUM_INTRAOP_THREADS", "1"), ("OMP_NUM_THREADS", "1"),
                          ("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")):
        os.environ.setdefault(_name, _value)

import numpy as np  # noqa: E402
import pytest  # noqa: E402


BACKEND_FACTS = ("ON_TENSORFLOW", "TENSORFLOW_ON_GPU", "tensorflow_only", "jax_only", "torch_only",
                 "same_on_every_backend")


def __getattr__(name):
    """The backend's facts and the markers built on them, on first use.

    Keras (and with it TensorFlow, about 8 s) is imported only where tests are collected: pytest-xdist's
    controlling process loads this file for its hooks alone, and starts the workers sooner without it.
    """
    if name not in BACKEND_FACTS:
        raise AttributeError(f"module 'conftest' has no attribute {name!r}")
    import keras

    backend = keras.backend.backend()
    on_tensorflow = backend == "tensorflow"
    facts = {
        "ON_TENSORFLOW": on_tensorflow,
        # TensorFlow compiles K stacked points with XLA only on a GPU. Physical devices: listing the logical ones
        # starts TensorFlow's runtime, and a process forked after that (mutmut's test workers) hangs in its first
        # tf.function.
        "TENSORFLOW_ON_GPU": on_tensorflow and bool(__import__("tensorflow").config.list_physical_devices("GPU")),
        # For behaviour only the TensorFlow backend has: tf.data streaming, writing the weights into the model.
        "tensorflow_only": pytest.mark.skipif(not on_tensorflow, reason="TensorFlow backend only"),
        "jax_only": pytest.mark.skipif(backend != "jax", reason="JAX backend only"),
        "torch_only": pytest.mark.skipif(backend != "torch", reason="PyTorch backend only"),
        # For tests of what no backend code touches (argument checks, files, messages, scheduling): the JAX and
        # PyTorch passes (`tests/test_other_backends.py`) skip them, since they would only repeat the TensorFlow
        # pass.
        "same_on_every_backend": pytest.mark.skipif(not on_tensorflow, reason="backend-independent: run on TensorFlow"),
    }
    globals().update(facts)
    return facts[name]


def regularized_cnn(seed=0):
    """A small CNN with every feature the engine must get right: L2, BatchNorm, Dropout."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, kernel_regularizer=keras.regularizers.l2(1e-2)),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(3, activation="softmax", kernel_regularizer=keras.regularizers.l2(1e-2)),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def image_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8, 8, 1)).astype("float32")
    y = (x[:, :4].mean(axis=(1, 2, 3)) > 0).astype("int64") + (x[:, 4:].mean(axis=(1, 2, 3)) > 0)
    sample_weight = rng.uniform(0.1, 2.0, size=200).astype("float32")
    return x, y, sample_weight


@pytest.fixture(scope="module")
def trained_cnn(image_data):
    x, y, _ = image_data
    model = regularized_cnn()
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    return model


@pytest.fixture
def small_mlp():
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)]
    )
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return model


@pytest.fixture
def regularized_mlp():
    """A small regression MLP whose first layer carries an L2 penalty, compiled with a metric."""
    import keras

    keras.utils.set_random_seed(7)
    model = keras.Sequential([
        keras.Input((5,)),
        keras.layers.Dense(6, activation="tanh", kernel_regularizer=keras.regularizers.L2(0.05)),
        keras.layers.Dense(1),
    ])
    model.compile(loss="mse", metrics=["mae"])
    return model


def errors_at(model, weights, x, y):
    """The model's predictions minus `y` at trainable weights `weights`, which are then put back."""
    saved = [v.numpy() for v in model.trainable_variables]
    for variable, value in zip(model.trainable_variables, weights):
        variable.assign(value)
    try:
        return model.predict(x, verbose=0) - y
    finally:
        for variable, value in zip(model.trainable_variables, saved):
            variable.assign(value)


@pytest.fixture(scope="module")
def regression_data():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(96, 5)).astype("float32")
    y = (x @ rng.normal(size=(5, 1))).astype("float32")
    return x, y


def weights_at(model, origin, directions, coefficients):
    """θ0 + Σ c_k d_k computed in numpy, independently of the engine."""
    return [
        (w + sum(c * d[i] for c, d in zip(coefficients, directions))).astype(w.dtype)
        for i, w in enumerate(origin)
    ]


def count_evaluate_calls(monkeypatch, model) -> list:
    """A list that grows by one at each `model.evaluate` call, which still evaluates."""
    calls = []
    evaluate = model.evaluate
    monkeypatch.setattr(model, "evaluate", lambda *args, **kwargs: (calls.append(1), evaluate(*args, **kwargs))[1])
    return calls


def evaluate_at(model, weights, **evaluate_kwargs):
    """model.evaluate with the trainable weights set to `weights`, then put back."""
    saved = [v.numpy() for v in model.trainable_variables]
    for variable, value in zip(model.trainable_variables, weights):
        variable.assign(value)
    try:
        return model.evaluate(verbose=0, return_dict=True, **evaluate_kwargs)
    finally:
        for variable, value in zip(model.trainable_variables, saved):
            variable.assign(value)


def all_state(model):
    """Copies of every model, optimizer and metric variable, for bitwise comparison."""
    variables = list(model.variables) + list(model.metrics_variables)
    if model.optimizer is not None:
        variables += list(model.optimizer.variables)
    return [np.array(v.numpy()) for v in variables]


def assert_same_state(before, after):
    assert len(before) == len(after)
    for a, b in zip(before, after):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()


def trained_classifier(samples, features, hidden, epochs=2):
    """A small trained softmax classifier and its data (class = sign of the first features' sum)."""
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, features)).astype("float32")
    y = (x[:, :3].sum(axis=1) > 0).astype("int64")
    model = keras.Sequential(
        [keras.Input((features,)), keras.layers.Dense(hidden, activation="relu"), keras.layers.Dense(2, activation="softmax")]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, verbose=0)
    return model, x, y


@pytest.fixture(autouse=True)
def _fresh_evaluator_cache():
    """Each test compiles its own evaluators; tests/test_evaluator_cache.py tests the reuse."""
    from losslandscape.evaluator_cache import clear_evaluator_cache

    clear_evaluator_cache()
    yield
    clear_evaluator_cache()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@contextlib.contextmanager
def edited(path, seal=True):
    """The saved file at `path`, open for changes; sealed again afterwards, as if the library had written it so.

    With `seal=False` its seal is blanked instead, as files of other tools have none.
    """
    import h5py

    from losslandscape.hdf5_files import SEAL_SIZE, seal_of

    with h5py.File(path, "r+") as file:
        yield file
    content = open(path, "rb").read()
    with open(path, "wb") as file:
        file.write((seal_of(content[SEAL_SIZE:]) if seal else bytes(SEAL_SIZE)) + content[SEAL_SIZE:])


# The longest work units first, so that pytest-xdist's two workers finish together: each backend's pass
# (minutes, one subprocess), the reproductions' smoke runs, then the modules of about 10 s or more in the inner loop
# (`-m "not slow"`). Measured on 2 cores, 2026-12-05 and 2026-12-06.
LONGEST_FIRST = ("tests/test_other_backends.py::TestOnTorch", "tests/test_other_backends.py::TestOnJax",
                 "tests/test_reproductions.py", "tests/test_series.py", "tests/test_engine.py",
                 "tests/test_evaluator_cache.py", "tests/test_cli.py", "tests/test_distributed.py", "tests/test_api.py",
                 "tests/test_demo.py", "tests/test_hessian.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        return next((i for i, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: the rest keep their order


# Work units that pytest-xdist may split further than by module: one unit per model of the conformance matrix,
# whose module alone would otherwise take the inner loop's whole time on one worker while the other waits.
SPLIT_BY_FIRST_PARAMETER = ("tests/test_conformance.py::test_every_path_equals_model_evaluate[",)


def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByModuleOrModel(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            if nodeid.startswith(SPLIT_BY_FIRST_PARAMETER):
                return nodeid.split("-", 1)[0]
            return super()._split_scope(nodeid)

    return ByModuleOrModel(config, log)


def without_package(monkeypatch, package):
    """Makes `import package` (and its submodules) fail, as if it were not installed."""
    import builtins

    real_import = builtins.__import__

    def refusing(name, *args, **kwargs):
        if name.split(".")[0] == package:
            raise ImportError(f"No module named {package!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refusing)
