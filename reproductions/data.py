"""CIFAR-10 (online through Keras, or offline from the standard python pickles), synthetic stand-ins, and digits."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Optional

import numpy as np

CIFAR_FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILE = "test_batch"


def load_cifar10(data_dir: Optional[str] = None, synthetic: bool = False, seed: int = 0):
    """CIFAR-10 as float32 images with the per-pixel training mean subtracted, as in the paper's code.

    Args:
        data_dir: A folder holding `cifar-10-batches-py` (or that folder
            itself), from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz.
            When `None`, `keras.datasets.cifar10` is used (it downloads once
            and caches in ~/.keras/datasets).
        synthetic: Small random CIFAR-shaped data instead (512 train, 256
            test images), for smoke runs without any download.
        seed: Seed of the synthetic data.

    Returns:
        `((x_train, y_train), (x_test, y_test))`, images `(N, 32, 32, 3)`
        float32, labels `(N,)` int64.
    """
    if synthetic:
        rng = np.random.default_rng(seed)
        train = (rng.integers(0, 256, (512, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 512))
        test = (rng.integers(0, 256, (256, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 256))
    elif data_dir is not None:
        train, test = _read_pickles(Path(data_dir))
    else:
        train, test = _keras_cifar10()
    return subtract_pixel_mean(train, test)


def subtract_pixel_mean(train, test):
    """Scales images to [0, 1] and subtracts the per-pixel mean of the training images from both sets."""
    x_train = train[0].astype(np.float32) / 255.0
    x_test = test[0].astype(np.float32) / 255.0
    mean = x_train.mean(axis=0)
    return (x_train - mean, np.asarray(train[1], np.int64).ravel()), (x_test - mean, np.asarray(test[1], np.int64).ravel())


def load_digits_images(seed: int = 0):
    """scikit-learn's digits as 8×8×1 images (1,297 train, 500 test), per-pixel mean subtracted."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    images = (x.reshape(-1, 8, 8, 1) * 255.0 / 16.0).astype(np.uint8)
    order = np.random.default_rng(seed).permutation(len(images))
    train, test = order[:1297], order[1297:]
    return subtract_pixel_mean((images[train], y[train]), (images[test], y[test]))


def _read_pickles(data_dir: Path):
    folder = data_dir / CIFAR_FOLDER if (data_dir / CIFAR_FOLDER).is_dir() else data_dir
    missing = [name for name in TRAIN_FILES + [TEST_FILE] if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} does not hold the CIFAR-10 python files ({', '.join(missing)} missing). "
            "Unpack cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar-10.html there."
        )
    batches = [_read_batch(folder / name) for name in TRAIN_FILES]
    train = (np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))
    return train, _read_batch(folder / TEST_FILE)


def _read_batch(path: Path):
    with open(path, "rb") as file:
        batch = pickle.load(file, encoding="bytes")
    # Rows hold 1024 red, then 1024 green, then 1024 blue values of a 32×32 image.
    images = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(batch[b"labels"], np.int64)


def _keras_cifar10():
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as error:  # no network and no cache: say both ways to get the data
        cache = os.path.join(os.path.expanduser("~"), ".keras", "datasets")
        raise RuntimeError(
            "CIFAR-10 is not available: keras.datasets.cifar10 could not download it "
            f"({error.__class__.__name__}) and it is not cached in {cache}. Either run once "
            "with internet access, or download cifar-10-python.tar.gz from "
            "https://www.cs.toronto.edu/~kriz/cifar-10.html, unpack it and pass "
            "--data-dir FOLDER (the folder holding cifar-10-batches-py). "
            "--synthetic runs on random CIFAR-shaped data instead."
        ) from error
    return (x_train, y_train), (x_test, y_test)
