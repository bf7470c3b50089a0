"""How far a landscape computed under dtype_policy="mixed_bfloat16" is from the float32 one.

Run: python benchmarks/precision_error.py

For two models trained on scikit-learn's digits, computes the same 11×11
surface (filter-normalized directions, α, β in [-1, 1]) in float32 and under
"mixed_bfloat16", and prints the relative loss error (median, max), the
largest accuracy difference, and the position of the minimum in each.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras
import numpy as np

from losslandscape import compute_surface, random_directions
from losslandscape.demo import digits_mlp, load_digits_split
from reproductions.models import digits_cnn

AXIS = np.linspace(-1.0, 1.0, 11)


def compare(name, model, x, y):
    directions = random_directions(model, seed=0)
    full = compute_surface(model, (x, y), directions, xcoords=AXIS, verbose=0)
    low = compute_surface(model, (x, y), directions, xcoords=AXIS, dtype_policy="mixed_bfloat16", verbose=0)
    loss, low_loss = full.losses["train"], low.losses["train"]
    relative = np.abs(low_loss - loss) / np.abs(loss)
    accuracy_gap = np.abs(low.metrics["train"]["accuracy"] - full.metrics["train"]["accuracy"]).max()
    minimum = tuple(int(i) for i in np.unravel_index(np.argmin(loss), loss.shape))
    low_minimum = tuple(int(i) for i in np.unravel_index(np.argmin(low_loss), loss.shape))
    print(
        f"{name:<28} {np.median(relative):>10.2e} {relative.max():>10.2e} {accuracy_gap:>10.4f} "
        f"{str(minimum):>10} {str(low_minimum):>10}",
        flush=True,
    )


def main():
    print(f"Keras {keras.__version__}; 11x11 grid, alpha and beta in [-1, 1]")
    print(f"{'model':<28} {'rel. median':>10} {'rel. max':>10} {'acc. max':>10} {'min f32':>10} {'min bf16':>10}")
    (x_train, y_train), (x_test, y_test) = load_digits_split()
    mlp = digits_mlp()
    mlp.fit(x_train, y_train, epochs=30, verbose=0)
    compare("MLP 64-64-10, digits test", mlp, x_test, y_test)

    cnn = digits_cnn()
    cnn.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    images_train, images_test = x_train.reshape(-1, 8, 8, 1), x_test.reshape(-1, 8, 8, 1)
    cnn.fit(images_train, y_train, epochs=20, batch_size=64, verbose=0)
    compare("CNN with BatchNorm, digits", cnn, images_test, y_test)


if __name__ == "__main__":
    main()
