"""Training recipes of the paper's code: SGD (Nesterov) or Adam, step-decayed learning rate, crop-and-flip augmentation.

Example (the paper's ResNet-56, small batch, weight decay 5e-4, on a GPU):
    python -m reproductions.train --model resnet --depth 56 --out runs/resnet56_sgd_bs128

Every knob is a flag; --help lists them. --smoke trains on synthetic data for one epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from reproductions.data import load_cifar10, load_digits_images  # noqa: E402
from reproductions.models import build_model  # noqa: E402

# The reference divides the learning rate by 10 at epochs 150, 225 and 275 of 300.
DECAY_FRACTIONS = (150 / 300, 225 / 300, 275 / 300)
DEFAULT_LEARNING_RATES = {"sgd": 0.1, "adam": 0.001}


def load_dataset(name: str, data_dir: Optional[str] = None, synthetic: bool = False, seed: int = 0):
    """`((x_train, y_train), (x_test, y_test))` for "cifar10" (or synthetic CIFAR) or "digits"."""
    if name == "digits":
        return load_digits_images(seed)
    if name == "cifar10":
        return load_cifar10(data_dir, synthetic=synthetic, seed=seed)
    raise ValueError(f"Unknown dataset {name!r}; expected cifar10 or digits.")


def compile_for_training(model, optimizer: str, learning_rate: float, epochs: int, steps_per_epoch: int):
    """Compiles with cross-entropy on logits, accuracy, and the step-decayed learning rate."""
    boundaries = [max(1, round(f * epochs)) * steps_per_epoch for f in DECAY_FRACTIONS]
    values = [learning_rate * 0.1**k for k in range(len(boundaries) + 1)]
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    if optimizer == "sgd":
        instance = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True)
    elif optimizer == "adam":
        instance = keras.optimizers.Adam(schedule)
    else:
        raise ValueError(f"Unknown optimizer {optimizer!r}; expected sgd or adam.")
    model.compile(
        optimizer=instance,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def augmented_batches(x, y, batch_size: int, augment: bool, seed: int):
    """Shuffled batches; with `augment`, a random crop of the 4-pixel zero-padded image and a random flip."""
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if augment:
        height, width, channels = x.shape[1:]

        def crop_and_flip(image, label):
            padded = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
            image = tf.image.random_crop(padded, (height, width, channels))
            return tf.image.random_flip_left_right(image), label

        dataset = dataset.map(crop_and_flip, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def train(
    model_name: str = "resnet",
    depth: int = 56,
    dataset: str = "cifar10",
    optimizer: str = "sgd",
    batch_size: int = 128,
    epochs: int = 300,
    learning_rate: Optional[float] = None,
    weight_decay: float = 5e-4,
    augment: bool = True,
    out: str = "runs/model",
    checkpoint_every: int = 0,
    data_dir: Optional[str] = None,
    synthetic: bool = False,
    seed: int = 0,
    verbose: int = 1,
    data=None,
):
    """Trains one model with the paper's recipe and saves it.

    Args:
        model_name: "resnet", "resnet_noshort", "vgglike" or "digits_cnn".
        depth: 20, 56, 110, ... for the CIFAR nets.
        dataset: "cifar10" or "digits".
        optimizer: "sgd" (Nesterov momentum 0.9) or "adam".
        batch_size: Mini-batch size.
        epochs: Training epochs; the learning rate drops ×0.1 at 50 %,
            75 % and 91.7 % of them (epochs 150, 225, 275 of 300).
        learning_rate: Initial rate; 0.1 for SGD, 0.001 for Adam by default.
        weight_decay: In PyTorch's sense (gradient += λ·w); applied as Keras
            `l2(λ / 2)` on every kernel.
        augment: Random crops and flips (CIFAR only).
        out: Output folder: `model_final.keras`, `result.json`, and
            `model_epochNNN.keras` every `checkpoint_every` epochs (0: none).
        data_dir, synthetic: Where CIFAR-10 comes from (see `load_cifar10`).
        seed: Seed of the initialization and the data order.
        verbose: Keras' fit verbosity.
        data: Already loaded `((x_train, y_train), (x_test, y_test))`.

    Returns:
        `(model, result)` with `result` the dict written to `result.json`.
    """
    keras.utils.set_random_seed(seed)
    (x_train, y_train), (x_test, y_test) = data or load_dataset(dataset, data_dir, synthetic, seed)
    model = build_model(model_name, depth, weight_decay / 2, input_shape=x_train.shape[1:])
    steps_per_epoch = int(np.ceil(len(x_train) / batch_size))
    rate = learning_rate or DEFAULT_LEARNING_RATES[optimizer]
    compile_for_training(model, optimizer, rate, epochs, steps_per_epoch)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    callbacks = []
    if checkpoint_every:
        model.save(out / "model_epoch000.keras")
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: (epoch + 1) % checkpoint_every == 0
            and model.save(out / f"model_epoch{epoch + 1:03d}.keras")
        ))
    started = time.perf_counter()
    history = model.fit(
        augmented_batches(x_train, y_train, batch_size, augment and dataset == "cifar10", seed),
        epochs=epochs, verbose=verbose, callbacks=callbacks, shuffle=False,
    )
    test = model.evaluate(x_test, y_test, batch_size=512, verbose=0, return_dict=True)
    model.save(out / "model_final.keras")
    result = {
        "model": model.name, "dataset": dataset, "optimizer": optimizer, "batch_size": batch_size,
        "epochs": epochs, "learning_rate": rate, "weight_decay_pytorch": weight_decay,
        "augment": augment, "seed": seed, "train_loss": float(history.history["loss"][-1]),
        "test_loss": float(test["loss"]), "test_accuracy": float(test["accuracy"]),
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    (out / "result.json").write_text(json.dumps(result, indent=2))
    return model, result


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet", choices=("resnet", "resnet_noshort", "vgglike", "digits_cnn"))
    parser.add_argument("--depth", type=int, default=56, help="6n + 2: 20, 56, 110 (default: %(default)s)")
    parser.add_argument("--no-shortcut", action="store_true", help="same as --model resnet_noshort")
    parser.add_argument("--dataset", default="cifar10", choices=("cifar10", "digits"))
    parser.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--lr", type=float, help="initial learning rate (default: 0.1 for sgd, 0.001 for adam)")
    parser.add_argument("--weight-decay", type=float, default=5e-4, help="PyTorch-style weight decay (default: %(default)s)")
    parser.add_argument("--no-augment", action="store_true", help="no random crops and flips")
    parser.add_argument("--checkpoint-every", type=int, default=0, help="save model_epochNNN.keras every k epochs")
    parser.add_argument("--out", default="runs/model", help="output folder (default: %(default)s)")
    parser.add_argument("--data-dir", help="folder with cifar-10-batches-py (default: keras.datasets.cifar10)")
    parser.add_argument("--synthetic", action="store_true", help="random CIFAR-shaped data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="synthetic data, ResNet-20, 1 epoch: a quick end-to-end check")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.synthetic, args.epochs, args.depth, args.batch_size, args.dataset = True, 1, 20, 64, "cifar10"
    model_name = "resnet_noshort" if args.no_shortcut and args.model == "resnet" else args.model
    try:
        _, result = train(
            model_name, args.depth, args.dataset, args.optimizer, args.batch_size, args.epochs, args.lr,
            args.weight_decay, not args.no_augment, args.out, args.checkpoint_every, args.data_dir,
            args.synthetic, args.seed, verbose=2,
        )
    except (RuntimeError, FileNotFoundError, ValueError) as error:
        print(f"train: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
