"""The paper's CIFAR-10 networks (ResNets with and without skip connections, VGG-like plain nets)
and a small CNN for offline runs on scikit-learn's digits."""

from __future__ import annotations

import keras


def cifar_resnet(
    depth: int = 20,
    shortcut: bool = True,
    weight_decay: float = 2.5e-4,
    activation: str = "relu",
    num_classes: int = 10,
    input_shape: tuple[int, int, int] = (32, 32, 3),
) -> keras.Model:
    """ResNet-`depth` for CIFAR (He et al. 2016): 3 stages of n basic blocks, depth = 6n + 2.

    Args:
        depth: 20, 56, 110, ... (6n + 2).
        shortcut: `False` removes the skip connections ("no-short" in the paper).
        weight_decay: Keras L2 factor on every kernel. Keras' l2(λ) adds λ·Σw²
            to the loss (gradient 2λw), so PyTorch's weight_decay=5e-4 is
            l2(2.5e-4).
        activation: Activation after each BatchNorm.
        num_classes: Output classes.
        input_shape: Image shape.

    Returns:
        An uncompiled `keras.Model`.

    Example:

    >>> cifar_resnet(20).count_params() > 270_000
    True
    """
    blocks_per_stage = _blocks_per_stage(depth)
    regularizer = keras.regularizers.l2(weight_decay) if weight_decay else None
    inputs = keras.Input(input_shape)
    x = _conv_bn(inputs, 16, 1, regularizer)
    x = keras.layers.Activation(activation)(x)
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(blocks_per_stage):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, strides, shortcut, regularizer, activation)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, kernel_regularizer=regularizer)(x)
    name = f"resnet{depth}" if shortcut else f"resnet{depth}_noshort"
    return keras.Model(inputs, outputs, name=name)


def _blocks_per_stage(depth):
    """n for a net of depth 6n + 2."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"Expected `depth` = 6n + 2 with n >= 1 (20, 56, 110), received: {depth}")
    return (depth - 2) // 6


def _conv_bn(x, filters, strides, regularizer, kernel_size=3):
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False,
        kernel_initializer="he_normal", kernel_regularizer=regularizer,
    )(x)
    return keras.layers.BatchNormalization()(x)


def _basic_block(x, filters, strides, shortcut, regularizer, activation):
    residual = _conv_bn(x, filters, strides, regularizer)
    residual = keras.layers.Activation(activation)(residual)
    residual = _conv_bn(residual, filters, 1, regularizer)
    if shortcut:
        skip = x
        if strides != 1 or x.shape[-1] != filters:
            skip = _conv_bn(x, filters, strides, regularizer, kernel_size=1)
        residual = keras.layers.Add()([residual, skip])
    return keras.layers.Activation(activation)(residual)


def cifar_vgglike(
    depth: int = 20,
    weight_decay: float = 2.5e-4,
    activation: str = "relu",
    num_classes: int = 10,
    input_shape: tuple[int, int, int] = (32, 32, 3),
) -> keras.Model:
    """A VGG-like plain net of ResNet depth (6n + 2): conv-BN-activation stacks, max pooling between stages.

    The three stages have 2n convolutions of 16, 32 and 64 filters; a 2×2 max
    pooling (instead of a strided convolution) halves the resolution before
    stages 2 and 3; global average pooling and a dense layer classify.

    Args:
        depth: 20, 56, 110, ... (6n + 2).
        weight_decay: Keras L2 factor on every kernel (PyTorch 5e-4 = 2.5e-4 here).
        activation: Activation after each BatchNorm.
        num_classes: Output classes.
        input_shape: Image shape.

    Returns:
        An uncompiled `keras.Model`.

    Example:

    >>> cifar_vgglike(20).name
    'vgglike20'
    """
    convolutions_per_stage = 2 * _blocks_per_stage(depth)
    regularizer = keras.regularizers.l2(weight_decay) if weight_decay else None
    inputs = keras.Input(input_shape)
    x = keras.layers.Activation(activation)(_conv_bn(inputs, 16, 1, regularizer))
    for stage, filters in enumerate((16, 32, 64)):
        if stage > 0:
            x = keras.layers.MaxPooling2D(2)(x)
        for _ in range(convolutions_per_stage):
            x = keras.layers.Activation(activation)(_conv_bn(x, filters, 1, regularizer))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, kernel_regularizer=regularizer)(x)
    return keras.Model(inputs, outputs, name=f"vgglike{depth}")


def digits_cnn(weight_decay: float = 0.0, activation: str = "relu", num_classes: int = 10) -> keras.Model:
    """A small CNN for 8×8 digit images: two conv-BN stages, global pooling, dense.

    Args:
        weight_decay: Keras L2 factor on every kernel.
        activation: Activation after each BatchNorm.
        num_classes: Output classes.

    Returns:
        An uncompiled `keras.Model` with logits outputs.

    Example:

    >>> digits_cnn().count_params() < 20_000
    True
    """
    regularizer = keras.regularizers.l2(weight_decay) if weight_decay else None
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Activation(activation)(_conv_bn(inputs, 16, 1, regularizer))
    x = keras.layers.Activation(activation)(_conv_bn(x, 32, 2, regularizer))
    x = keras.layers.Activation(activation)(_conv_bn(x, 32, 1, regularizer))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, kernel_regularizer=regularizer)(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def build_model(name: str, depth: int = 20, weight_decay: float = 2.5e-4, activation: str = "relu",
                input_shape=(32, 32, 3)) -> keras.Model:
    """Builds "resnet", "resnet_noshort", "vgglike" (of `depth`) or "digits_cnn" by name."""
    if name == "resnet":
        return cifar_resnet(depth, True, weight_decay, activation, input_shape=input_shape)
    if name == "resnet_noshort":
        return cifar_resnet(depth, False, weight_decay, activation, input_shape=input_shape)
    if name == "vgglike":
        return cifar_vgglike(depth, weight_decay, activation, input_shape=input_shape)
    if name == "digits_cnn":
        return digits_cnn(weight_decay, activation)
    raise ValueError(f"Unknown model {name!r}; expected resnet, resnet_noshort, vgglike or digits_cnn.")
