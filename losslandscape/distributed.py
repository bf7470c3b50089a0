"""Evaluating chunks of grid points in other processes or machines.

The driver (the process that called `compute_surface`) sends each worker a
`WorkerJob`: the model as `.keras` bytes, the data (arrays or an `NpzData`
that names a file), the directions, the grid, and content hashes of the
driver's weights and data. A worker builds the model and the compiled
evaluator once per job, checks that the weights and the data it reads hash
as the driver's, and that its value at the origin agrees, then answers
chunks of point indices with their values, as a plain `.npz` archive of
arrays that the driver reads without unpickling and checks (the points it
asked for, one float per point and value, the values it expects) before
recording them. Only the driver writes files. Workers are trusted code:
the executor's own channel pickles (as Dask's documentation says of its
workers), so run them only on machines you control. Any
`concurrent.futures.Executor` works: `process_pool` for several processes
or GPUs on one host, Dask's `client.get_executor()` (or a
`distributed.Client` itself) for clusters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import multiprocessing
import os
import pickle
import socket
import tempfile
import threading
import zipfile
from concurrent.futures import (
    FIRST_COMPLETED,
    BrokenExecutor,
    Executor,
    ProcessPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import keras
import numpy as np

from losslandscape.backends import current_backend
from losslandscape.datasets import labelled_datasets, prepare_data
from losslandscape.directions import trainable_weight_values
from losslandscape.engine import build_evaluator, evaluate_grid
from losslandscape.evaluation_settings import EvaluationSettings
from losslandscape.progress import Progress
from losslandscape.resume import model_fingerprint

ORIGIN_TOLERANCE = 1e-4
MAX_ATTEMPTS = 3


@dataclass
class WorkerJob:
    """Everything a worker needs to evaluate points of one run; pickled to workers."""

    model_bytes: bytes
    data: dict
    directions: list
    coefficients: np.ndarray
    settings: EvaluationSettings
    fingerprints: dict = field(default_factory=dict)  # "model" and {label: data hash}, as the driver has them
    key: str = field(default="", compare=False)


@dataclass
class ChunkResult:
    """Values of one chunk of points, and the worker's own value at the origin."""

    label: str
    indices: np.ndarray
    values: dict
    origin: dict
    worker: str

    def to_bytes(self) -> bytes:
        """The result as a `.npz` archive of plain arrays (what a worker sends back)."""
        buffer = io.BytesIO()
        arrays: dict[str, Any] = {  # Any: mypy reads a str-keyed dict of arrays as possibly `allow_pickle`
            f"value/{name}": np.asarray(values, np.float64) for name, values in self.values.items()
        }
        arrays.update({f"origin/{name}": np.asarray(value, np.float64) for name, value in self.origin.items()})
        np.savez(buffer, label=np.str_(self.label), indices=np.asarray(self.indices, np.int64),
                 worker=np.str_(self.worker), **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, reply, label: str, indices: np.ndarray, names) -> "ChunkResult":
        """Reads a worker's reply to the chunk `label`/`indices`: those points' values, `names` among them."""
        if not isinstance(reply, bytes):
            raise ValueError(f"A worker replied with a {type(reply).__name__}, not the bytes of an .npz archive.")
        try:
            with np.load(io.BytesIO(reply), allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(f"A worker's reply is not an .npz archive of plain arrays: {error}") from None
        values = {key[len("value/"):]: arrays[key] for key in arrays if key.startswith("value/")}
        origin = {key[len("origin/"):]: arrays[key] for key in arrays if key.startswith("origin/")}
        expected = sorted(names)  # the driver's values at the origin; a curvature map's points have more
        problems = [
            problem for problem, found in (
                (f"label {label!r}", str(arrays.get("label", "")) == label),
                (f"the {len(indices)} points asked for", "indices" in arrays and np.array_equal(arrays["indices"], indices)),
                (f"values {expected}", set(expected) <= set(values) and sorted(values) == sorted(origin)),
                ("one float64 per point and value", all(
                    v.dtype == np.float64 and v.shape == (len(indices),) for v in values.values()
                ) and all(v.dtype == np.float64 and v.shape == () for v in origin.values())),
            ) if not found
        ]
        if problems or "worker" not in arrays:
            raise ValueError(
                f"A worker's reply to {len(indices)} points of {label!r} lacks {', '.join(problems) or 'its name'}; "
                "it is not recorded."
            )
        return cls(label, np.asarray(indices), values, {k: float(v) for k, v in origin.items()}, str(arrays["worker"]))


def process_pool(max_workers: int, gpus: Optional[Sequence[int]] = None) -> ProcessPoolExecutor:
    """A pool of fresh Python processes, optionally one GPU each.

    Workers start with the "spawn" method (TensorFlow does not survive
    `fork`). With `gpus`, each worker sets `CUDA_VISIBLE_DEVICES` to one of
    them before importing TensorFlow, round robin.

    Args:
        max_workers: Number of worker processes.
        gpus: GPU indices to spread the workers over.

    Returns:
        A `concurrent.futures.ProcessPoolExecutor` to pass as `executor=`.

    Examples:
        >>> with process_pool(2) as pool:
        ...     surface = compute_surface(model, (x, y), executor=pool)  # doctest: +SKIP
    """
    if not isinstance(max_workers, int) or max_workers < 1:
        raise ValueError(f"Expected `max_workers` >= 1, received: {max_workers!r}")
    context = multiprocessing.get_context("spawn")
    devices = context.Queue()
    for index in range(max_workers):
        devices.put(None if not gpus else gpus[index % len(gpus)])
    return ProcessPoolExecutor(max_workers, mp_context=context, initializer=_claim_device, initargs=(devices,))


def evaluate_on_executor(model, prepared, directions, coefficients, pending, record, settings, *, data,
                         executor) -> None:
    """Evaluates the `pending` points on `executor`, passing each chunk to `record`.

    Args:
        model: The driver's compiled model at θ0 (left untouched).
        prepared: The driver's `{label: batches}`, used for its origin check.
        directions: The run's directions.
        coefficients: `(num_points, k)` coefficients of the whole grid.
        pending: `{label: point indices}` still to compute.
        record: Called as `record(label, indices, values)` for each chunk.
        settings: The run's `EvaluationSettings`.
        data: The data as the user passed it, sent to the workers.
        executor: A `concurrent.futures.Executor` or a Dask `Client`.
    """
    executor = _as_executor(executor)
    origin_point = np.zeros((1, coefficients.shape[1]))
    expected_origin = evaluate_grid(
        model, prepared, directions, origin_point, verbose=0,
        include_regularization=settings.include_regularization,
    )
    job = make_job(model, labelled_datasets(data, list(prepared)), settings, directions, coefficients)
    job.fingerprints = {
        "model": model_fingerprint(model),
        "data": {label: batches.fingerprint() for label, batches in prepared.items()},
    }
    chunk_size = settings.chunk_size or 16
    chunks = [
        (label, indices[start : start + chunk_size])
        for label, indices in pending.items()
        for start in range(0, len(indices), chunk_size)
    ]
    progress = Progress(sum(len(indices) for _, indices in chunks), settings.verbose, unit="point")
    in_flight = {executor.submit(evaluate_chunk, job, label, indices): (label, indices, 1) for label, indices in chunks}
    try:
        while in_flight:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                label, indices, attempt = in_flight.pop(future)
                try:
                    reply = future.result()
                except Exception as error:
                    if not _lost_worker(error):
                        raise  # it would fail the same way on any worker
                    if attempt >= MAX_ATTEMPTS:
                        raise RuntimeError(
                            f"A chunk of {len(indices)} points failed {attempt} times; the last error "
                            f"was {error!r}. Points computed so far are kept."
                        ) from error
                    in_flight[executor.submit(evaluate_chunk, job, label, indices)] = (label, indices, attempt + 1)
                    continue
                result = ChunkResult.from_bytes(reply, label, indices, expected_origin[label])
                _check_origin(result, expected_origin[label])
                record(result.label, result.indices, result.values)
                progress.add(len(result.indices), first_call=progress.done == 0)
        progress.close()
    finally:
        for future in in_flight:
            future.cancel()


def make_job(model, data: dict, settings: EvaluationSettings, directions, coefficients) -> WorkerJob:
    """Packs the model, the data `{label: dataset}` and the grid for the workers."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        with open(path, "rb") as file:
            model_bytes = file.read()
    job = WorkerJob(
        model_bytes=model_bytes,
        data=_picklable(data),
        directions=[list(d) for d in directions],
        coefficients=np.asarray(coefficients, np.float64),
        settings=dataclasses.replace(settings, verbose=0),
    )
    job.key = hashlib.blake2b(pickle.dumps(job), digest_size=16).hexdigest()
    return job


def evaluate_chunk(job: WorkerJob, label: str, indices: np.ndarray) -> bytes:
    """Runs in a worker: evaluates the points `indices` of dataset `label`; the `ChunkResult` as bytes."""
    state = _worker_state(job)
    values = state["evaluators"][label].evaluate(job.coefficients[indices])
    named = {name: np.array([v[name] for v in values]) for name in values[0]}
    return ChunkResult(label, np.asarray(indices), named, state["origin"][label], state["worker"]).to_bytes()


# Per thread: an evaluator writes the weights of its own model copy, so two threads of one
# worker process (Dask's default) must never share one.
_WORKER_STATE = threading.local()


def _worker_state(job: WorkerJob) -> dict:
    """The model, data and evaluators of `job`, built once per worker thread."""
    if getattr(_WORKER_STATE, "key", None) == job.key:
        return _WORKER_STATE.state
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        with open(path, "wb") as file:
            file.write(job.model_bytes)
        model = keras.models.load_model(path, safe_mode=True)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    _check_same(worker, "model weights", model_fingerprint(model), job.fingerprints.get("model"))
    origin_weights = trainable_weight_values(model)
    settings = job.settings
    evaluators, origin = {}, {}
    for label, data in job.data.items():
        batches = prepare_data(data, settings.batch_size, settings.max_samples, settings.max_batches, model=model)
        _check_same(worker, f"data {label!r}", batches.fingerprint(), job.fingerprints.get("data", {}).get(label))
        evaluator = build_evaluator(
            model, batches, origin_weights, job.directions, engine=settings.engine,
            include_regularization=settings.include_regularization, points_per_call=settings.points_per_call,
            points=job.coefficients, curvature=settings.curvature,
        )
        origin[label] = evaluator.evaluate(np.zeros((1, len(job.directions))))[0]
        evaluators[label] = evaluator
    state = {"evaluators": evaluators, "origin": origin, "worker": worker}
    _WORKER_STATE.key, _WORKER_STATE.state = job.key, state
    return state


class WorkerMismatchError(ValueError):
    """A worker holds other weights or data than the driver."""


def _check_same(worker, what, found, expected) -> None:
    if expected is not None and found != expected:
        raise WorkerMismatchError(
            f"Worker {worker} reads other {what} than the driver (content hash {found[:12]} vs "
            f"{expected[:12]}): give every worker the same model and the same data files."
        )


def _lost_worker(error: BaseException) -> bool:
    """Whether `error` says a worker was lost (then its chunk may succeed elsewhere), not that the work fails."""
    return isinstance(error, (BrokenExecutor, ConnectionError, EOFError, TimeoutError)) or type(error).__name__ in (
        "KilledWorker", "CommClosedError", "StreamClosedError",
    )


def _check_origin(result: ChunkResult, expected: dict) -> None:
    for name, values in expected.items():
        mine, theirs = float(values[0]), result.origin[name]
        if not np.isclose(theirs, mine, rtol=ORIGIN_TOLERANCE, atol=0.0, equal_nan=True):
            raise ValueError(
                f"Worker {result.worker} gets {name} = {theirs!r} at the origin, the driver "
                f"{mine!r}: it has a different environment or different data. Check that "
                "every worker has the same package versions and reads the same data files."
            )


def _picklable(data: dict) -> dict:
    for label, dataset in data.items():
        if current_backend().is_native_dataset(dataset) or isinstance(dataset, keras.utils.PyDataset):
            raise TypeError(
                f"Dataset {label!r} is a {type(dataset).__name__}, which cannot be sent to "
                "workers. Pass arrays `(x, y)` or `losslandscape.NpzData(path)` with `executor=`."
            )
    return data


def _as_executor(executor) -> Executor:
    """Accepts an Executor, or a Dask `Client` (anything with `get_executor()`)."""
    if isinstance(executor, Executor):
        return executor
    if hasattr(executor, "get_executor"):
        return executor.get_executor()
    raise TypeError(
        "Expected `executor` to be a concurrent.futures.Executor or a dask.distributed "
        f"Client, received: {type(executor).__name__}"
    )


def _claim_device(devices) -> None:
    device = devices.get()
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(device)
