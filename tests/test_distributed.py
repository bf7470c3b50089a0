import io
import os
import re
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import h5py
import keras
import numpy as np
import pytest

import losslandscape.distributed as distributed
from losslandscape.backends import current_backend
from conftest import trained_classifier, same_on_every_backend
from losslandscape import NpzData, compute_line, compute_surface, process_pool

THIS_PROCESS = f"{socket.gethostname()}:{os.getpid()}"  # how a worker thread of this process names itself


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distributed")
    model, x, y = trained_classifier(1500, 20, 32)
    np.savez(folder / "data.npz", features=x, labels=y)
    return model, (x, y), NpzData(str(folder / "data.npz"), x_key="features", y_key="labels")


@pytest.mark.slow
def test_process_pool_gives_the_serial_surface(classifier):
    model, data, _ = classifier
    grid = np.linspace(-1, 1, 5)
    serial = compute_surface(model, {"train": data, "head": (data[0][:300], data[1][:300])}, xcoords=grid, seed=3, verbose=0)
    with process_pool(2) as pool:
        spread = compute_surface(
            model, {"train": data, "head": (data[0][:300], data[1][:300])}, xcoords=grid, seed=3,
            executor=pool, chunk_size=4, verbose=0,
        )
    for label in ("train", "head"):
        np.testing.assert_array_equal(spread.losses[label], serial.losses[label])
        np.testing.assert_array_equal(spread.metrics[label]["accuracy"], serial.metrics[label]["accuracy"])


@same_on_every_backend
def test_a_failed_chunk_is_retried(classifier, monkeypatch):
    model, data, npz = classifier
    original = distributed.evaluate_chunk
    failures = []
    lock = threading.Lock()

    def fail_once(job, label, rows):
        with lock:
            first = not failures
            if first:
                failures.append(rows)
        if first:
            raise ConnectionError("worker lost")
        return original(job, label, rows)

    monkeypatch.setattr(distributed, "evaluate_chunk", fail_once)
    with ThreadPoolExecutor(2) as pool:
        line = compute_line(model, npz, coords=np.linspace(-1, 1, 9), seed=0, executor=pool, chunk_size=3, verbose=0)
    serial = compute_line(model, data, coords=np.linspace(-1, 1, 9), seed=0, verbose=0)
    assert len(failures) == 1
    np.testing.assert_array_equal(line.losses["train"], serial.losses["train"])


def test_workers_evaluate_k_points_per_call(classifier, monkeypatch):
    model, data, _ = classifier
    vectorized = current_backend().vectorized_evaluator
    original = vectorized.evaluate
    calls = []

    def counted(self, rows):
        calls.append(len(rows))
        return original(self, rows)

    monkeypatch.setattr(vectorized, "evaluate", counted)
    grid = np.linspace(-1, 1, 4)
    with ThreadPoolExecutor(2) as pool:
        spread = compute_surface(model, data, xcoords=grid, seed=3, executor=pool, chunk_size=8, points_per_call=4,
                                 verbose=0)
    assert calls.count(8) == 2  # the 16 points came as two chunks of 8, each to a stacked evaluator
    serial = compute_surface(model, data, xcoords=grid, seed=3, points_per_call=1, verbose=0)
    np.testing.assert_allclose(spread.losses["train"], serial.losses["train"], rtol=1e-5)
    np.testing.assert_allclose(spread.metrics["train"]["accuracy"], serial.metrics["train"]["accuracy"], rtol=1e-6)


def test_a_worker_with_other_values_at_the_origin_stops_the_run(classifier, monkeypatch):
    model, data, _ = classifier
    original = distributed._worker_state

    def shifted_origin(job):
        state = dict(original(job))
        state["origin"] = {label: dict(v, loss=v["loss"] * 1.01) for label, v in state["origin"].items()}
        return state

    monkeypatch.setattr(distributed, "_worker_state", shifted_origin)
    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError,
                                                       match=re.escape(f"Worker {THIS_PROCESS} gets loss = ")):
        compute_line(model, data, coords=np.linspace(-1, 1, 3), executor=pool, verbose=0)


@same_on_every_backend
def test_unsendable_data_and_executors_are_rejected(classifier):
    import tensorflow as tf

    model, data, _ = classifier
    with ThreadPoolExecutor(1) as pool, pytest.raises(TypeError, match="NpzData"):
        compute_line(model, tf.data.Dataset.from_tensor_slices(data).batch(100), executor=pool, verbose=0)
    with pytest.raises(TypeError, match=re.escape(
            "Expected `executor` to be a concurrent.futures.Executor or a dask.distributed Client, received: str")):
        compute_line(model, data, executor="localhost:8786", verbose=0)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 1

        def __getitem__(self, index):
            return data

    with ThreadPoolExecutor(1) as pool, pytest.raises(TypeError, match=re.escape(
            "Dataset 'train' is a Batches, which cannot be sent to workers. Pass arrays `(x, y)` or "
            "`losslandscape.NpzData(path)` with `executor=`.")):
        compute_line(model, Batches(), executor=pool, verbose=0)


@pytest.mark.slow
def test_dask_cluster_with_a_worker_killed_mid_run_gives_the_serial_surface(classifier, tmp_path):
    distributed_dask = pytest.importorskip("dask.distributed")
    model, data, npz = classifier
    grid = np.linspace(-1, 1, 25)
    path = tmp_path / "surface.h5"
    with distributed_dask.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed_dask.Client(cluster) as client:
        victim = next(iter(client.run(os.getpid).values()))
        killed = threading.Event()

        def kill_a_worker_mid_run():
            deadline = time.time() + 120
            while time.time() < deadline:
                if path.exists():
                    with h5py.File(path, "r") as file:
                        if file["computed/train"][()].sum() >= 40:
                            os.kill(victim, signal.SIGKILL)
                            killed.set()
                            return
                time.sleep(0.02)

        watcher = threading.Thread(target=kill_a_worker_mid_run)
        watcher.start()
        spread = compute_surface(
            model, npz, xcoords=grid, seed=4, batch_size=25, path=path, executor=client, chunk_size=8,
            points_per_call=1, verbose=0,
        )
        watcher.join()
    assert killed.is_set()
    assert spread.is_complete
    serial = compute_surface(model, data, xcoords=grid, seed=4, batch_size=25, points_per_call=1, verbose=0)
    np.testing.assert_array_equal(spread.losses["train"], serial.losses["train"])
    np.testing.assert_array_equal(spread.metrics["train"]["accuracy"], serial.metrics["train"]["accuracy"])


@pytest.mark.parametrize("change", ["one_sample", "one_bias"])
def test_a_worker_with_slightly_other_data_or_weights_is_refused(classifier, tmp_path, monkeypatch, change):
    """Differences the origin check cannot see (one sample of 1,500, one bias by 0.01) are caught by content hashes."""
    model, (x, y), npz = classifier
    original_make_job = distributed.make_job

    def job_with_a_difference(model, data, settings, directions, coefficients):
        if change == "one_sample":
            other = x.copy()
            other[7, 3] += 0.5
            np.savez(tmp_path / "other.npz", features=other, labels=y)
            data = {"train": NpzData(str(tmp_path / "other.npz"), x_key="features", y_key="labels")}
        else:
            model = keras.models.clone_model(model)
            model.set_weights([w + 0.01 if i == 1 else w for i, w in enumerate(classifier[0].get_weights())])
        return original_make_job(model, data, settings, directions, coefficients)

    monkeypatch.setattr(distributed, "make_job", job_with_a_difference)
    what = "data 'train'" if change == "one_sample" else "model weights"
    with ThreadPoolExecutor(1) as pool, pytest.raises(distributed.WorkerMismatchError,
                                                       match=re.escape(f"Worker {THIS_PROCESS} reads other {what}")):
        compute_line(model, npz, coords=np.linspace(-1, 1, 3), executor=pool, verbose=0)


@same_on_every_backend
def test_a_chunk_that_fails_the_same_way_everywhere_is_not_retried(classifier, monkeypatch):
    model, data, _ = classifier
    calls = []

    def refuse(job, label, rows):
        calls.append(rows)
        raise ValueError("Unknown layer: 'MyLayer'")

    monkeypatch.setattr(distributed, "evaluate_chunk", refuse)
    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match="Unknown layer"):
        compute_line(model, data, coords=np.linspace(-1, 1, 3), executor=pool, chunk_size=3, verbose=0)
    assert len(calls) == 1


class _Payload:
    """What a hostile worker might send instead of arrays: an object that runs code when unpickled."""

    def __reduce__(self):
        return (print, ("code ran on the driver",))


def _tampered(change):
    def reply(job, label, indices):
        result = distributed.ChunkResult.from_bytes(
            original_chunk(job, label, indices), label, indices, ["loss", "accuracy"]
        )
        return change(result, indices)

    original_chunk = distributed.evaluate_chunk
    return reply


def _replaced(result, **fields):
    return distributed.dataclasses.replace(result, **fields).to_bytes()


@same_on_every_backend
@pytest.mark.parametrize(
    "change, message",
    [
        (lambda result, rows: _Payload(), "A worker replied with a _Payload, not the bytes of an .npz archive."),
        (lambda result, rows: b"not an archive", "A worker's reply is not an .npz archive of plain arrays"),
        (lambda result, rows: _replaced(result, indices=result.indices + 1), "lacks the 3 points asked for; it is not"),
        (lambda result, rows: _replaced(result, label="test"), "lacks label 'train'"),
        (lambda result, rows: _replaced(result, values={"loss": result.values["loss"]}),
         "lacks values ['accuracy', 'loss']"),
        (lambda result, rows: _replaced(result, values=dict(result.values, loss=result.values["loss"][:2])),
         "lacks one float64 per point and value"),
    ],
)
def test_a_worker_reply_that_is_not_the_points_asked_for_is_refused_and_nothing_is_recorded(
        classifier, monkeypatch, tmp_path, change, message):
    model, data, _ = classifier
    monkeypatch.setattr(distributed, "evaluate_chunk", _tampered(change))
    path = tmp_path / "line.h5"
    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match=re.escape(message)):
        compute_line(model, data, coords=np.linspace(-1, 1, 3), executor=pool, path=path, verbose=0)
    assert not path.exists()  # no point recorded, so no file written


@same_on_every_backend
def test_a_reply_round_trips_as_plain_arrays():
    result = distributed.ChunkResult("train", np.array([4, 7]), {"loss": np.array([0.5, np.inf])}, {"loss": 0.25},
                                     "host:1")
    blob = result.to_bytes()
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        assert sorted(archive.files) == ["indices", "label", "origin/loss", "value/loss", "worker"]
    back = distributed.ChunkResult.from_bytes(blob, "train", np.array([4, 7]), ["loss"])
    assert (back.label, back.worker, back.origin) == ("train", "host:1", {"loss": 0.25})
    np.testing.assert_array_equal(back.values["loss"], [0.5, np.inf])
    np.testing.assert_array_equal(back.indices, [4, 7])


def _archive(**arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "changes, lacks",
    [
        (dict(label=np.str_("test"), indices=np.array([4, 8])), "label 'train', the 2 points asked for"),
        ({"origin/accuracy": None}, "values ['accuracy', 'loss']"),  # an origin for each value, and no other
        ({"origin/loss": np.array([0.25])}, "one float64 per point and value"),
        (dict(worker=None), "its name"),
    ],
)
def test_a_reply_is_read_only_with_every_part_of_the_points_asked_for(changes, lacks):
    arrays = {"label": np.str_("train"), "indices": np.array([4, 7]), "worker": np.str_("host:1"),
              "value/loss": np.array([0.5, 1.0]), "value/accuracy": np.array([0.9, 0.8]),
              "origin/loss": np.array(0.25), "origin/accuracy": np.array(0.95)}
    arrays = {key: value for key, value in dict(arrays, **changes).items() if value is not None}
    message = f"A worker's reply to 2 points of 'train' lacks {lacks}; it is not recorded."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        distributed.ChunkResult.from_bytes(_archive(**arrays), "train", np.array([4, 7]), ["loss", "accuracy"])


def test_a_worker_with_other_content_is_named_with_both_hashes():
    message = ("Worker host:1 reads other model weights than the driver (content hash 0123456789ab vs "
               "ba9876543210): give every worker the same model and the same data files.")
    with pytest.raises(distributed.WorkerMismatchError, match=f"^{re.escape(message)}$"):
        distributed._check_same("host:1", "model weights", "0123456789abcdef", "ba9876543210fedc")
    distributed._check_same("host:1", "model weights", "0123456789abcdef", None)  # nothing to compare with


@same_on_every_backend
def test_a_reply_is_sent_as_float64_values_and_int64_indices_whatever_the_worker_computed_in():
    result = distributed.ChunkResult("train", np.array([4, 7], np.int32), {"loss": np.array([0.5, 2.0], np.float32)},
                                     {"loss": np.float32(0.25)}, "host:1")
    blob = result.to_bytes()
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        assert (archive["indices"].dtype, archive["value/loss"].dtype, archive["origin/loss"].dtype) == (
            np.int64, np.float64, np.float64)
    back = distributed.ChunkResult.from_bytes(blob, "train", np.array([4, 7]), ["loss"])
    np.testing.assert_array_equal(back.values["loss"], [0.5, 2.0])


def test_errors_of_lost_dask_workers_are_retried_and_others_are_not():
    for name in ("KilledWorker", "CommClosedError", "StreamClosedError"):
        assert distributed._lost_worker(type(name, (Exception,), {})("gone"))
    for error in (ConnectionResetError(), EOFError(), TimeoutError()):
        assert distributed._lost_worker(error)
    for error in (ValueError("bad data"), RuntimeError("out of memory"), type("WorkerError", (Exception,), {})()):
        assert not distributed._lost_worker(error)


def test_a_workers_value_at_the_origin_must_agree_to_a_relative_one_in_ten_thousand():
    def result(loss):
        return distributed.ChunkResult("train", np.array([0]), {"loss": np.array([1.0])}, {"loss": loss}, "host:1")

    distributed._check_origin(result(2.0 * (1 + 0.9e-4)), {"loss": np.array([2.0])})
    distributed._check_origin(result(np.nan), {"loss": np.array([np.nan])})  # NaN at the origin on both sides
    message = ("Worker host:1 gets loss = 2.0004 at the origin, the driver 2.0: it has a different environment or "
               "different data. Check that every worker has the same package versions and reads the same data files.")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        distributed._check_origin(result(2.0004), {"loss": np.array([2.0])})
    with pytest.raises(ValueError, match="gets loss = 1e-09 at the origin, the driver 0.0"):  # relative only
        distributed._check_origin(result(1e-9), {"loss": np.array([0.0])})


@same_on_every_backend
def test_a_chunk_whose_worker_is_lost_three_times_stops_the_run_and_keeps_the_points_done(classifier, monkeypatch,
                                                                                          tmp_path):
    from losslandscape import load_line

    model, data, _ = classifier
    original = distributed.evaluate_chunk
    attempts = []

    def lose_the_last_chunk(job, label, rows):
        if 2 in rows:
            attempts.append(rows.tolist())
            raise ConnectionError("worker lost")
        return original(job, label, rows)

    monkeypatch.setattr(distributed, "evaluate_chunk", lose_the_last_chunk)
    path = tmp_path / "line.h5"
    message = ("A chunk of 1 points failed 3 times; the last error was ConnectionError('worker lost'). Points "
               "computed so far are kept.")
    with ThreadPoolExecutor(1) as pool, pytest.raises(RuntimeError, match=re.escape(message)):
        compute_line(model, data, coords=np.linspace(-1, 1, 3), seed=0, executor=pool, chunk_size=1, path=path,
                     verbose=0)
    assert attempts == [[2], [2], [2]]
    kept = load_line(path)
    assert kept.computed["train"].tolist() == [True, True, False]
    serial = compute_line(model, data, coords=np.linspace(-1, 1, 3), seed=0, verbose=0)
    np.testing.assert_array_equal(kept.losses["train"][:2], serial.losses["train"][:2])


@same_on_every_backend
def test_a_process_pool_gives_its_workers_the_gpus_round_robin(monkeypatch):
    import queue

    made = {}

    class Recorded:
        def __init__(self, max_workers, mp_context, initializer, initargs):
            made.update(max_workers=max_workers, initializer=initializer, devices=initargs[0],
                        start_method=None if mp_context is None else mp_context.get_start_method())

    monkeypatch.setattr(distributed, "ProcessPoolExecutor", Recorded)
    distributed.process_pool(5, gpus=[2, 7])
    assert made["max_workers"] == 5 and made["initializer"] is distributed._claim_device
    assert made["start_method"] == "spawn"  # TensorFlow does not survive fork
    assert [made["devices"].get(timeout=5) for _ in range(5)] == [2, 7, 2, 7, 2]
    distributed.process_pool(2)
    assert [made["devices"].get(timeout=5) for _ in range(2)] == [None, None]
    distributed.process_pool(1)
    assert made["max_workers"] == 1
    for wrong in (0, -1, 1.5, "2"):
        with pytest.raises(ValueError, match=re.escape(f"Expected `max_workers` >= 1, received: {wrong!r}")):
            distributed.process_pool(wrong)
    devices = queue.Queue()
    devices.put(7)
    devices.put(None)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    distributed._claim_device(devices)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "7"
    distributed._claim_device(devices)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "7"  # no GPU named: left as it is


@same_on_every_backend
def test_workers_evaluate_with_the_drivers_settings(classifier):
    _, (x, y), _ = classifier
    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(
        2, activation="softmax", kernel_regularizer=keras.regularizers.L2(0.5))])
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    settings = dict(coords=np.linspace(-1, 1, 4), seed=1, include_regularization=False, batch_size=100,
                    max_batches=3, max_samples=1000, points_per_call=1, verbose=0)
    serial = compute_line(model, (x, y), **settings)
    with ThreadPoolExecutor(2) as pool:
        spread = compute_line(model, (x, y), executor=pool, chunk_size=2, **settings)
    np.testing.assert_array_equal(spread.losses["train"], serial.losses["train"])
    others = dict(settings, include_regularization=True, max_batches=None, max_samples=250)
    with ThreadPoolExecutor(1) as pool:
        np.testing.assert_array_equal(compute_line(model, (x, y), executor=pool, **others).losses["train"],
                                      compute_line(model, (x, y), **others).losses["train"])
    with_penalty = compute_line(model, (x, y), **dict(settings, include_regularization=True))
    assert np.all(with_penalty.losses["train"] > serial.losses["train"] + 1e-3)
    all_batches = compute_line(model, (x, y), **dict(settings, max_batches=None))
    assert not np.allclose(all_batches.losses["train"], serial.losses["train"], rtol=1e-4)


def test_a_worker_thread_loads_the_model_once_in_a_folder_of_its_own_and_in_safe_mode(classifier, monkeypatch,
                                                                                   tmp_path, capsys):
    model, data, _ = classifier
    loaded = []
    load_model = keras.models.load_model

    def counted(path, **options):
        loaded.append(options)
        return load_model(path, **options)

    monkeypatch.setattr(keras.models, "load_model", counted)
    monkeypatch.chdir(tmp_path)
    with ThreadPoolExecutor(1) as pool:
        compute_line(model, data, coords=np.linspace(-1, 1, 3), executor=pool, chunk_size=1, verbose=0)
    assert loaded == [{"safe_mode": True}]  # one thread, three chunks: built once
    assert os.listdir(tmp_path) == []  # the model's bytes went to a temporary folder
    assert capsys.readouterr().out == ""


def test_a_dask_client_lends_its_executor_and_chunks_are_16_points_by_default(classifier, monkeypatch, capsys):
    from losslandscape.progress import Progress

    model, data, _ = classifier
    chunks, added = [], []
    original = distributed.evaluate_chunk

    def counted(job, label, rows):
        chunks.append(len(rows))
        return original(job, label, rows)

    class Recorded(Progress):
        def add(self, count, first_call=False):
            added.append((count, first_call))
            super().add(count, first_call)

    class Client:  # what compute_line uses of a dask.distributed Client
        def __init__(self, pool):
            self.pool = pool

        def get_executor(self):
            return self.pool

    monkeypatch.setattr(distributed, "evaluate_chunk", counted)
    monkeypatch.setattr(distributed, "Progress", Recorded)
    coords = np.linspace(-1, 1, 20)
    with ThreadPoolExecutor(1) as pool:
        line = compute_line(model, data, coords=coords, seed=0, executor=Client(pool), verbose=1)
    assert chunks == [16, 4]
    assert added == [(16, True), (4, False)]  # only the first chunk's time (it builds the model) is left out
    assert capsys.readouterr().out.splitlines()[-1].startswith("20/20 points in ")
    np.testing.assert_array_equal(line.losses["train"], compute_line(model, data, coords=coords, seed=0,
                                                                     verbose=0).losses["train"])


def test_a_worker_thread_kept_between_runs_builds_each_runs_model_again(classifier):
    model, data, _ = classifier
    coords = np.linspace(-1, 1, 3)
    with ThreadPoolExecutor(1) as pool:  # as Dask's worker threads, kept from one run to the next
        compute_line(model, data, coords=coords, seed=0, executor=pool, verbose=0)
        second = compute_line(model, data, coords=coords, seed=1, executor=pool, verbose=0)
    np.testing.assert_array_equal(second.losses["train"],
                                  compute_line(model, data, coords=coords, seed=1, verbose=0).losses["train"])


def test_workers_build_the_evaluator_the_driver_asks_for_under_the_users_labels(classifier, monkeypatch):
    model, data, _ = classifier
    built = []
    original = distributed.build_evaluator

    def recorded(*args, **options):
        built.append(options)
        return original(*args, **options)

    monkeypatch.setattr(distributed, "build_evaluator", recorded)
    settings = dict(coords=np.linspace(-1, 1, 5), seed=0, engine="evaluate", labels=["mine"], verbose=0)
    with ThreadPoolExecutor(1) as pool:
        line = compute_line(model, data, executor=pool, **settings)
    assert [(options["engine"], len(options["points"])) for options in built] == [("evaluate", 5)]
    assert list(line.losses) == ["mine"]
    np.testing.assert_allclose(line.losses["mine"], compute_line(model, data, **settings).losses["mine"], rtol=1e-6)
