"""Where the time of K stacked points goes on the digits MLP, one stage at a time.

Run: python benchmarks/mlp_step_breakdown.py [--points-per-call 256] [--batch-size 128]

The K-point evaluator on the MLP 64-128-10 with the first Dense layer folded does, per batch and
point: combine the per-batch terms x·W0 + b0, x·D1, x·D2 with the point's coefficients, ReLU, the
second Dense layer with the point's own kernel (a batched matrix product), the sparse
cross-entropy and the accuracy. This script writes those stages by hand in TensorFlow on random
data of the digits' shape (1,797 × 64) and times them cumulatively, as a graph and with XLA, so
that the cost of each stage is the difference between two rows. It also times the second layer
computed another way: every point's activations against [W0 | D1 | D2] in one large matrix
product, then combined per point, which does 3 times the arithmetic in one call. With `--torch`
it also times the same K-point step written in plain PyTorch (eager, under `torch.no_grad`), which
bounds what the PyTorch backend could reach with these kernels. Milliseconds per grid point, the
fastest of 5 repeats of 3 calls.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

SAMPLES, INPUTS, HIDDEN, CLASSES, DIRECTIONS = 1797, 64, 128, 10, 2
STAGES = ("combine", "+ relu", "+ second Dense (batched)", "+ cross-entropy", "+ accuracy")


def random_arrays(points: int) -> dict:
    """The data, weights, directions and K points' coefficients both steps run on, as float32 (labels int32)."""
    rng = np.random.default_rng(0)
    return {
        "x": rng.standard_normal((SAMPLES, INPUTS)).astype(np.float32),
        "y": rng.integers(0, CLASSES, SAMPLES).astype(np.int32),
        "kernel1": 0.1 * rng.standard_normal((INPUTS, HIDDEN)).astype(np.float32),
        "directions1": 0.1 * rng.standard_normal((DIRECTIONS, INPUTS, HIDDEN)).astype(np.float32),
        "kernel2": 0.1 * rng.standard_normal((HIDDEN, CLASSES)).astype(np.float32),
        "directions2": 0.1 * rng.standard_normal((DIRECTIONS, HIDDEN, CLASSES)).astype(np.float32),
        "coefficients": rng.uniform(-1, 1, (points, DIRECTIONS)).astype(np.float32),
    }


def stacked_step(stage: int, points: int, batch_size: int, jit_compile: bool, second_layer: str = "batched"):
    """A compiled function that runs the MLP's K-point work up to `stage` over all samples."""
    arrays = {name: tf.constant(a) for name, a in random_arrays(points).items()}
    x, y, kernel1, kernel2 = arrays["x"], arrays["y"], arrays["kernel1"], arrays["kernel2"]
    directions1, directions2, coefficients = arrays["directions1"], arrays["directions2"], arrays["coefficients"]
    bias1 = tf.zeros(HIDDEN)
    weights = tf.concat([tf.ones((points, 1)), coefficients], axis=1)  # (K, 1 + directions)
    point_kernels2 = kernel2[None] + tf.tensordot(coefficients, directions2, axes=1)  # (K, hidden, classes)
    joined_kernel2 = tf.concat([kernel2, *tf.unstack(directions2)], axis=1)  # (hidden, 3 * classes)

    @tf.function(autograph=False, jit_compile=jit_compile)
    def run():
        total = tf.zeros((points,))
        for start in range(0, SAMPLES, batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            terms = tf.stack([xb @ kernel1 + bias1, *[xb @ d for d in tf.unstack(directions1)]])
            outputs = tf.tensordot(weights, terms, axes=1)  # (K, batch, hidden)
            if stage >= 1:
                outputs = tf.nn.relu(outputs)
            if stage >= 2:
                if second_layer == "batched":
                    outputs = tf.matmul(outputs, point_kernels2)
                else:
                    joined = tf.reshape(tf.reshape(outputs, (-1, HIDDEN)) @ joined_kernel2,
                                        (points, -1, 1 + DIRECTIONS, CLASSES))
                    outputs = tf.einsum("kj,kbjc->kbc", weights, joined)
            if stage < 3:
                total += tf.reduce_sum(outputs, axis=[1, 2])
                continue
            labels = tf.broadcast_to(yb[None], (points, tf.shape(yb)[0]))
            total += tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=outputs), 1)
            if stage >= 4:
                correct = tf.equal(tf.argmax(outputs, -1, output_type=tf.int32), labels)
                total += tf.reduce_sum(tf.cast(correct, tf.float32), 1)
        return total

    return run


def torch_stacked_step(points: int, batch_size: int):
    """The whole K-point step of `stacked_step` (all stages) in plain PyTorch, on the same random data."""
    import torch

    arrays = {name: torch.tensor(a) for name, a in random_arrays(points).items()}
    x, y, kernel1, kernel2 = arrays["x"], arrays["y"].long(), arrays["kernel1"], arrays["kernel2"]
    directions1, directions2, coefficients = arrays["directions1"], arrays["directions2"], arrays["coefficients"]
    weights = torch.cat([torch.ones(points, 1), coefficients], 1)
    point_kernels2 = kernel2[None] + torch.tensordot(coefficients, directions2, dims=1)

    def run():
        total = torch.zeros(points)
        with torch.no_grad():
            for start in range(0, SAMPLES, batch_size):
                xb, yb = x[start : start + batch_size], y[start : start + batch_size]
                terms = torch.stack([xb @ kernel1, *[xb @ d for d in directions1]]).reshape(1 + DIRECTIONS, -1)
                hidden = torch.relu(weights @ terms).reshape(points, len(xb), HIDDEN)
                outputs = torch.bmm(hidden, point_kernels2)
                labels = yb[None, :, None].expand(points, len(xb), 1)
                total -= torch.log_softmax(outputs, -1).gather(2, labels).sum((1, 2))
                total += (outputs.argmax(-1) == yb).sum(1)
        return total

    return run


def milliseconds_per_point(function, points: int) -> float:
    np.asarray(function())
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(3):
            np.asarray(function())
        best = min(best, (time.perf_counter() - started) / 3)
    return 1e3 * best / points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points-per-call", type=int, default=256, help="K (default 256, what 'auto' picks)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--torch", action="store_true", help="also time the step in plain PyTorch")
    args = parser.parse_args()
    k, batch = args.points_per_call, args.batch_size
    print(f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}; K = {k}, batches of {batch}, ms per point")
    print(f"{'stage':28} {'graph':>8} {'XLA':>8}")
    for stage, name in enumerate(STAGES):
        graph = milliseconds_per_point(stacked_step(stage, k, batch, False), k)
        xla = milliseconds_per_point(stacked_step(stage, k, batch, True), k)
        print(f"{name:28} {graph:8.3f} {xla:8.3f}", flush=True)
    joined = milliseconds_per_point(stacked_step(len(STAGES) - 1, k, batch, False, second_layer="joined"), k)
    print(f"{'all, second Dense joined':28} {joined:8.3f}")
    if args.torch:
        import torch

        torch_ms = milliseconds_per_point(torch_stacked_step(k, batch), k)
        threads = torch.get_num_threads()
        print(f"{'all, plain PyTorch':28} {torch_ms:8.3f}   (PyTorch {torch.__version__}, {threads} threads)")


if __name__ == "__main__":
    main()
