import os

import keras
import numpy as np
import pytest

from conftest import (
    all_state, assert_same_state, count_evaluate_calls, edited, errors_at, evaluate_at, same_on_every_backend,
    tensorflow_only, weights_at,
)
from losslandscape import DatasetLabelError, compute_line, compute_surface, plot_loss, random_directions


def test_line_values_equal_evaluate_along_the_seeded_direction(small_mlp, regression_data):
    x, y = regression_data
    coords = np.linspace(-0.5, 0.5, 5)
    line = compute_line(small_mlp, (x, y), coords=coords, seed=11, batch_size=16, verbose=0)
    (direction,) = random_directions(small_mlp, n=1, seed=11)
    for a, b in zip(line.direction, direction):
        np.testing.assert_array_equal(a, b)
    origin = [v.numpy() for v in small_mlp.trainable_weights]
    for index, alpha in enumerate(coords):
        expected = evaluate_at(small_mlp, weights_at(small_mlp, origin, [direction], [alpha]), x=x, y=y)
        np.testing.assert_allclose(line.losses["train"][index], expected["loss"], rtol=1e-5)
        np.testing.assert_allclose(line.metrics["train"]["mae"][index], expected["mae"], rtol=1e-5)


def test_all_datasets_share_one_direction(small_mlp, regression_data):
    x, y = regression_data
    line = compute_line(small_mlp, ((x, y), (x[:48], y[:48]), (x, y)), coords=np.linspace(-1, 1, 7), verbose=0)
    assert line.labels == ["dataset0", "dataset1", "dataset2"]
    # Identical data along one shared direction gives identical curves.
    np.testing.assert_array_equal(line.losses["dataset0"], line.losses["dataset2"])
    assert not np.allclose(line.losses["dataset0"], line.losses["dataset1"])


def test_surface_index_order_is_x_then_y(small_mlp, regression_data):
    x, y = regression_data
    xcoords, ycoords = np.array([-1.0, 0.0, 0.5]), np.array([-0.5, 0.25])
    surface = compute_surface(small_mlp, {"train": (x, y)}, xcoords=xcoords, ycoords=ycoords, seed=3, verbose=0)
    assert surface.losses["train"].shape == (3, 2)
    origin = [v.numpy() for v in small_mlp.trainable_weights]
    for i, alpha in enumerate(xcoords):
        for j, beta in enumerate(ycoords):
            weights = weights_at(small_mlp, origin, surface.directions, [alpha, beta])
            expected = evaluate_at(small_mlp, weights, x=x, y=y)
            np.testing.assert_allclose(surface.losses["train"][i, j], expected["loss"], rtol=1e-5)


def test_the_origin_is_the_trained_loss(trained_cnn, image_data):
    x, y, _ = image_data
    surface = compute_surface(trained_cnn, (x, y), xcoords=np.linspace(-1, 1, 3), verbose=0)
    expected = trained_cnn.evaluate(x, y, verbose=0, return_dict=True)
    np.testing.assert_allclose(surface.losses["train"][1, 1], expected["loss"], rtol=1e-5)
    np.testing.assert_allclose(surface.metrics["train"]["accuracy"][1, 1], expected["accuracy"], rtol=1e-6)


def test_number_of_points_is_honoured(small_mlp, regression_data):
    line = plot_loss(small_mlp, regression_data, number_of_points=13, coordinate_range=(-2, 3), verbose=0)
    np.testing.assert_allclose(line.coords, np.linspace(-2, 3, 13))
    assert line.losses["train"].shape == (13,)
    plotted = line.axes_["line"].lines[0].get_xdata()
    assert len(plotted) == 13


def test_weights_and_optimizer_state_unchanged(trained_cnn, image_data):
    x, y, _ = image_data
    before = all_state(trained_cnn)
    compute_surface(trained_cnn, ((x, y), (x[:50], y[:50])), xcoords=np.linspace(-1, 1, 3), verbose=0)
    assert_same_state(before, all_state(trained_cnn))


@same_on_every_backend
def test_labels_must_match_the_datasets(small_mlp, regression_data):
    x, y = regression_data
    with pytest.raises(AssertionError, match="2 dataset labels"):
        plot_loss(small_mlp, ((x, y),), dataset_labels=("training set", "test set"), verbose=0)
    with pytest.raises(DatasetLabelError, match="1 dataset labels"):
        plot_loss(small_mlp, ((x, y), (x, y)), dataset_labels=("training set",), verbose=0)


@same_on_every_backend
@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x, y: ((x, y[:-1]), {}), "same number of samples"),
        (lambda x, y: ((x[:0], y[:0]), {}), "empty"),
        (lambda x, y: ((x, None), {}), "Targets"),
        (lambda x, y: ((x, y), {"coords": [0.0]}), "at least 2"),
        (lambda x, y: ((x, y), {"batch_size": 0}), "batch_size"),
        (lambda x, y: (x, {}), "Expected data"),
    ],
)
def test_bad_inputs_give_clear_errors(small_mlp, regression_data, change, message):
    data, kwargs = change(*regression_data)
    with pytest.raises((ValueError, TypeError), match=message):
        compute_line(small_mlp, data, verbose=0, **kwargs)


@same_on_every_backend
def test_plot_loss_rejects_fewer_than_two_points(small_mlp, regression_data):
    with pytest.raises(ValueError, match="number_of_points` >= 2"):
        plot_loss(small_mlp, regression_data, number_of_points=1, verbose=0)


def test_model_problems_give_clear_errors(regression_data):
    uncompiled = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match=r"model.compile\(loss="):
        compute_line(uncompiled, regression_data, verbose=0)
    frozen = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1, trainable=False)])
    frozen.compile(loss="mse")
    with pytest.raises(ValueError, match="no trainable weights"):
        compute_line(frozen, regression_data, verbose=0)


@same_on_every_backend
@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(xcoords=[1.0, 0.0, -1.0]), "strictly increasing"),
        (dict(xcoords=[0.0, 0.0, 1.0]), "strictly increasing"),
        (dict(ycoords=[0.5, 0.2]), "`ycoords` to be strictly increasing"),
        (dict(chunk_size=0), "`chunk_size` to be a positive integer"),
        (dict(chunk_size=-1), "`chunk_size` to be a positive integer"),
        (dict(points_per_call=0), "`points_per_call` to be a positive integer"),
        (dict(batch_size=0), "`batch_size` to be a positive integer"),
    ],
)
def test_bad_arguments_are_refused_before_any_point(small_mlp, regression_data, monkeypatch, arguments, message):
    import losslandscape.compute as compute_module

    monkeypatch.setattr(compute_module, "evaluate_grid", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(ValueError, match=message):
        compute_surface(small_mlp, regression_data, **dict(dict(xcoords=[-1.0, 1.0], verbose=0), **arguments))


@same_on_every_backend
def test_unwritable_output_paths_are_refused_before_any_point(small_mlp, regression_data, tmp_path, monkeypatch):
    for compute in (compute_line, compute_surface):
        with pytest.raises(FileNotFoundError, match="the folder .* does not exist"):
            compute(small_mlp, regression_data, path=tmp_path / "missing" / "landscape.h5", verbose=0)
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    # As root every folder is writable, so the permission is taken away where the check asks for it.
    monkeypatch.setattr(os, "access", lambda path, mode: os.fspath(path) != os.fspath(read_only))
    with pytest.raises(PermissionError, match="no permission"):
        compute_line(small_mlp, regression_data, path=read_only / "line.h5", verbose=0)


def test_labels_outside_the_output_and_wrong_feature_counts_are_named():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.zeros((20, 8), "float32")
    y = np.arange(20) % 3
    with pytest.raises(ValueError, match="has the label 3, but the model's sparse loss takes labels 0 to 2"):
        compute_line(model, (x, np.where(y == 2, 3, y)), verbose=0)
    with pytest.raises(ValueError, match=r"samples of shape \(5,\), but the model expects \(8,\)"):
        compute_line(model, (x[:, :5], y), verbose=0)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1))
    compute_line(model, (x, np.where(y == 2, -1, y)), coords=[0.0, 1.0], verbose=0)
    one_hot = np.eye(3, dtype="float32")[y]
    for loss in ("sparse_categorical_crossentropy", keras.losses.SparseCategoricalCrossentropy()):
        model.compile(loss=loss)
        with pytest.raises(ValueError, match=r"has labels of shape \(20, 3\), one value per class \(one-hot\)"):
            compute_line(model, (x, one_hot), verbose=0)
    model.compile(loss="categorical_crossentropy")  # the loss one-hot labels are for
    compute_line(model, (x, one_hot), coords=[0.0, 1.0], verbose=0)


@same_on_every_backend
def test_inputs_that_are_not_finite_and_a_landscape_without_a_finite_loss_are_each_one_warning(small_mlp, regression_data):
    x, y = regression_data
    x = x.copy()
    x[3, 1], x[7, 0] = np.nan, np.inf
    with pytest.warns(UserWarning) as caught:
        line = compute_line(small_mlp, (x, y), coords=[0.0, 0.5, 1.0], verbose=0)
    messages = [str(warning.message) for warning in caught if warning.category is UserWarning]
    assert messages == [
        f"The data 'train' holds 2 NaN or infinite input values (of {x.size}): losses over it will be NaN at every "
        "point. Drop or fix those samples, e.g. with np.isfinite.",
        "Every loss on 'train' is NaN or infinite (3 points): the data or the weights hold NaN or infinite values, "
        "or the loss overflows. Check them with np.isfinite.",
    ]
    assert np.isnan(line.losses["train"]).all()
    targets = y.copy()
    targets[8] = np.nan
    with pytest.warns(UserWarning, match=r"holds 1 NaN or infinite target values \(of"):
        compute_line(small_mlp, (x[8:], targets[8:]), coords=[0.0, 1.0], verbose=0)


def test_finite_data_gives_no_warning(small_mlp, regression_data):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        compute_line(small_mlp, regression_data, coords=[0.0, 1.0], verbose=0)


def test_a_landscape_that_overflows_only_far_out_gives_no_warning(regression_data):
    import warnings

    x, y = regression_data
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1, activation="exponential")])
    model.compile(loss="mse")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        line = compute_line(model, (x, y), coords=[0.0, 1000.0], seed=0, verbose=0)
    assert np.isfinite(line.losses["train"][0]) and not np.isfinite(line.losses["train"][1])


@same_on_every_backend
def test_plots_name_the_datasets_only_where_the_user_named_them(small_mlp, regression_data):
    x, y = regression_data
    grid = [0.0, 1.0]
    for data, labels, named in (((x, y), None, "default"), (((x, y), (x, y)), None, "default"),
                                ({"mine": (x, y)}, None, "given"), ((x, y), ["mine"], "given")):
        line = compute_line(small_mlp, data, coords=grid, labels=labels, verbose=0)
        assert line.settings["dataset_labels"] == named, (type(data), labels)
    assert compute_surface(small_mlp, {"a": (x, y)}, xcoords=grid, verbose=0).settings["dataset_labels"] == "given"


def test_settings_record_orthogonal_for_surfaces_and_keep_points_per_call_when_nothing_is_left(
        small_mlp, regression_data, tmp_path):
    from losslandscape import load_surface

    x, y = regression_data
    grid = [-1.0, 0.0, 1.0]
    path = tmp_path / "surface.h5"
    first = compute_surface(small_mlp, (x, y), xcoords=grid, orthogonal=True, seed=0, path=path, verbose=0)
    assert first.settings["orthogonal"] is True and load_surface(path).settings["orthogonal"]
    assert compute_surface(small_mlp, (x, y), xcoords=grid, seed=0, verbose=0).settings["orthogonal"] is False
    assert "orthogonal" not in compute_line(small_mlp, (x, y), coords=grid, seed=0, verbose=0).settings
    used = first.settings["points_per_call_used"]
    assert used == {"train": 1}
    again = compute_surface(small_mlp, (x, y), xcoords=grid, orthogonal=True, seed=0, path=path, verbose=0)
    assert again.settings["points_per_call_used"] == used == load_surface(path).settings["points_per_call_used"]


def test_a_resumed_run_keeps_the_check_auto_made_on_its_points_per_call(small_mlp, regression_data, tmp_path):
    from losslandscape import load_surface

    grid = np.linspace(-1, 1, 12)  # 144 points: "auto" probes
    path = tmp_path / "surface.h5"
    first = compute_surface(small_mlp, regression_data, xcoords=grid, seed=0, path=path, verbose=0)
    agreement = first.settings["points_per_call_agreement"]
    assert agreement["train"]["compared_with"] == "one point per call"
    again = compute_surface(small_mlp, regression_data, xcoords=grid, seed=0, path=path, verbose=0)
    assert again.settings["points_per_call_agreement"] == agreement
    assert load_surface(path).settings["points_per_call_agreement"] == agreement


def test_a_points_per_call_given_on_resume_is_used_for_the_points_left(small_mlp, regression_data, tmp_path):
    from losslandscape import load_surface

    grid = [-1.0, 0.0, 1.0]
    path = tmp_path / "surface.h5"
    first = compute_surface(small_mlp, regression_data, xcoords=grid, seed=0, points_per_call=2, path=path, verbose=0)
    assert first.settings["points_per_call_used"] == {"train": 2}
    with edited(path) as file:
        computed = file["computed/train"][()]
        computed[1:, :] = False
        file["computed/train"][...] = computed
    resumed = compute_surface(small_mlp, regression_data, xcoords=grid, seed=0, points_per_call=1, path=path,
                              verbose=0)
    assert resumed.settings["points_per_call_used"] == {"train": 1} == load_surface(path).settings[
        "points_per_call_used"]
    np.testing.assert_allclose(resumed.losses["train"], first.losses["train"], rtol=1e-5)


def _penalty_free_mse(model, weights, x, y):
    return float(np.mean(errors_at(model, weights, x, y) ** 2))


def _with_nonzero_biases(model):
    """Biases of zero would give zero directions for them under any normalization."""
    for layer in model.layers:
        layer.bias.assign(np.linspace(0.1, 0.5, layer.bias.shape[0]))
    return model


def test_compute_line_passes_every_argument_on(regularized_mlp, regression_data, tmp_path, capsys, monkeypatch):
    from losslandscape import LossLine

    x, y = regression_data
    model = _with_nonzero_biases(regularized_mlp)
    origin = [v.numpy() for v in model.trainable_weights]
    path = tmp_path / "line.h5"
    saves = []
    monkeypatch.setattr(LossLine, "save", lambda self, target: saves.append(target))
    line = compute_line(model, (x, y), coords=[-1.0, 0.0, 0.5, 2.0], seed=5, normalization="layer", ignore=None,
                        batch_size=16, max_batches=2, include_regularization=False, points_per_call=2, chunk_size=3,
                        path=path, verbose=0)
    (direction,) = random_directions(model, 1, seed=5, normalization="layer", ignore=None)
    assert all(np.any(d != 0) for d in direction)  # biases move too with ignore=None
    for drawn, expected in zip(line.direction, direction):
        np.testing.assert_allclose(drawn, expected, rtol=1e-6)
    for index, alpha in enumerate(line.coords):  # the first two batches of 16, without the penalty
        expected = _penalty_free_mse(model, weights_at(model, origin, [direction], [alpha]), x[:32], y[:32])
        assert line.losses["train"][index] == pytest.approx(expected, rel=1e-5)
    assert {key: line.settings[key] for key in ("batch_size", "max_batches", "include_regularization", "ignore",
                                                "normalization", "seed", "points_per_call_used")} == {
        "batch_size": 16, "max_batches": 2, "include_regularization": False, "ignore": None,
        "normalization": "layer", "seed": 5, "points_per_call_used": {"train": 2}}
    assert saves == [path, path]  # after each chunk of 3 points: 3, then 1
    saves.clear()
    compute_line(model, (x, y), coords=np.linspace(-1, 1, 9), path=tmp_path / "nine.h5", verbose=0)
    assert len(saves) == 2  # chunks of 8 points by default: 8, then 1
    default = compute_line(model, (x, y), coords=[0.0, 1.0], seed=5, verbose=0)  # ignore="biasbn"
    assert [bool(np.any(d != 0)) for d in default.direction] == [True, False, True, False]
    assert capsys.readouterr().out == ""


def test_compute_line_limits_samples_and_shows_progress(regularized_mlp, regression_data, capsys):
    x, y = regression_data
    model = regularized_mlp
    origin = [v.numpy() for v in model.trainable_weights]
    line = compute_line(model, (x, y), coords=[0.0, 1.0], seed=0, max_samples=40, dtype_policy="mixed_bfloat16")
    (direction,) = random_directions(model, 1, seed=0)
    for index, alpha in enumerate(line.coords):
        expected = evaluate_at(model, weights_at(model, origin, [direction], [alpha]), x=x[:40], y=y[:40])
        assert line.losses["train"][index] == pytest.approx(expected["loss"], rel=5e-2)  # bfloat16: 3 digits
    exact = compute_line(model, (x, y), coords=[0.0, 1.0], seed=0, max_samples=40, verbose=0)
    assert np.all(np.abs(line.losses["train"] / exact.losses["train"] - 1) > 1e-6)  # evaluated in bfloat16
    assert line.settings["max_samples"] == 40 and line.settings["dtype_policy"] == "mixed_bfloat16"
    assert line.settings["num_samples"] == {"train": 40}
    assert "2/2 points" in capsys.readouterr().out


def test_compute_line_uses_the_direction_given_and_resumes_or_refuses_its_file(small_mlp, regression_data, tmp_path,
                                                                               monkeypatch):
    from losslandscape.output_lock import OutputInUseError, exclusive_output

    x, y = regression_data
    origin = [v.numpy() for v in small_mlp.trainable_weights]
    direction = [np.full_like(w, 0.1) for w in origin]
    calls = count_evaluate_calls(monkeypatch, small_mlp)
    line = compute_line(small_mlp, (x, y), direction, coords=[0.0, 1.0], engine="evaluate", verbose=0)
    assert line.settings["directions"] == "given" and len(calls) == 2
    expected = evaluate_at(small_mlp, weights_at(small_mlp, origin, [direction], [1.0]), x=x, y=y)
    assert line.losses["train"][1] == pytest.approx(expected["loss"], rel=1e-5)
    path = tmp_path / "line.h5"
    first = compute_line(small_mlp, (x, y), coords=[0.0, 1.0], seed=None, path=path, verbose=0)
    again = compute_line(small_mlp, (x, y), coords=[0.0, 1.0], seed=None, path=path, verbose=0)  # the file's own
    for a, b in zip(first.direction, again.direction):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="was computed with another `coords` than this run"):
        compute_line(small_mlp, (x, y), coords=[0.0, 1.0, 2.0], seed=None, path=path, verbose=0)
    with exclusive_output(path), pytest.raises(OutputInUseError, match="is computing into"):
        compute_line(small_mlp, (x, y), coords=[0.0, 1.0], path=path, verbose=0)
    with pytest.raises(ValueError, match=r"^Expected `coords` to"):
        compute_line(small_mlp, (x, y), coords=[0.0], verbose=0)


def test_compute_surface_passes_its_sample_batch_and_policy_arguments_on(regularized_mlp, regression_data, capsys):
    x, y = regression_data
    model = regularized_mlp
    origin = [v.numpy() for v in model.trainable_weights]
    surface = compute_surface(model, (x, y), xcoords=[0.0, 1.0], ycoords=[-1.0, 0.0, 1.0], seed=2, batch_size=16,
                              max_batches=3, max_samples=40, include_regularization=False, chunk_size=2,
                              dtype_policy="mixed_bfloat16", points_per_call=1)
    directions = random_directions(model, 2, seed=2)
    for i, alpha in enumerate(surface.xcoords):
        for j, beta in enumerate(surface.ycoords):
            expected = _penalty_free_mse(model, weights_at(model, origin, directions, [alpha, beta]), x[:40], y[:40])
            assert surface.losses["train"][i, j] == pytest.approx(expected, rel=5e-2)
    assert {key: surface.settings[key] for key in ("batch_size", "max_batches", "max_samples", "dtype_policy",
                                                   "include_regularization", "num_samples")} == {
        "batch_size": 16, "max_batches": 3, "max_samples": 40, "dtype_policy": "mixed_bfloat16",
        "include_regularization": False, "num_samples": {"train": 40}}
    assert "6/6 points" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"^Expected `ycoords` to"):
        compute_surface(model, (x, y), xcoords=[0.0, 1.0], ycoords=[0.0], verbose=0)
    with pytest.raises(ValueError, match=r"^A surface needs 2 directions, received: 1$"):
        compute_surface(model, (x, y), [directions[0]], verbose=0)


def test_compute_surface_names_resumes_and_refuses_what_differs(small_mlp, regression_data, tmp_path, monkeypatch,
                                                                capsys):
    from losslandscape.output_lock import OutputInUseError, exclusive_output
    from losslandscape.resume import ResumeError

    x, y = regression_data
    model = _with_nonzero_biases(small_mlp)
    surface = compute_surface(model, {"mine": (x, y)}, xcoords=[0.0, 1.0], seed=1, verbose=0)
    assert list(surface.losses) == ["mine"] and surface.settings["dataset_labels"] == "given"
    assert [bool(np.any(d != 0)) for d in surface.directions[0]] == [True, False, True, False]  # ignore="biasbn"
    labelled = compute_surface(model, (x, y), xcoords=[0.0, 1.0], labels=["named"], seed=1, verbose=0)
    assert list(labelled.losses) == ["named"] and labelled.settings["dataset_labels"] == "given"
    assert capsys.readouterr().out == ""
    calls = count_evaluate_calls(monkeypatch, model)
    path = tmp_path / "surface.h5"
    first = compute_surface(model, (x, y), xcoords=[0.0, 1.0], seed=1, engine="evaluate", path=path, verbose=0)
    assert len(calls) == 4
    again = compute_surface(model, (x, y), xcoords=[0.0, 1.0], seed=1, engine="evaluate", path=path, verbose=0)
    assert len(calls) == 4  # every point is in the file already
    np.testing.assert_array_equal(again.losses["train"], first.losses["train"])
    drawing = ("directions", "seed", "normalization", "ignore", "orthogonal")
    assert {key: again.settings[key] for key in drawing} == {key: first.settings[key] for key in drawing} == {
        "directions": "random", "seed": 1, "normalization": "filter", "ignore": "biasbn", "orthogonal": False}
    # Given directions are the run's whatever the drawing settings say: a resume is not refused for them.
    given_path = tmp_path / "given.h5"
    for normalization in ("filter", "layer"):
        compute_surface(model, (x, y), first.directions, xcoords=[0.0, 1.0], normalization=normalization,
                        path=given_path, verbose=0)
        compute_line(model, (x, y), first.directions[0], coords=[0.0, 1.0], normalization=normalization,
                     path=tmp_path / "given_line.h5", verbose=0)
    for changed, differences in [(dict(normalization="layer"), ["normalization"]),
                                 (dict(ignore=None), ["ignore"]),
                                 (dict(ycoords=[0.0, 2.0]), ["coords"]),
                                 (dict(xcoords=[0.0, 2.0]), ["coords"])]:
        with pytest.raises(ResumeError) as refused:
            compute_surface(model, (x, y), **{"xcoords": [0.0, 1.0], "seed": 1, "engine": "evaluate", **changed},
                            path=path, verbose=0)
        assert refused.value.differences == differences
    line_path = tmp_path / "line.h5"
    compute_line(model, (x, y), coords=[0.0, 1.0], seed=1, path=line_path, verbose=0)
    with pytest.raises(ResumeError) as refused:  # a line's file, refused for the same reason
        compute_line(model, (x, y), coords=[0.0, 1.0], seed=1, normalization="layer", path=line_path, verbose=0)
    assert refused.value.differences == ["normalization"]
    with exclusive_output(path), pytest.raises(OutputInUseError, match="is computing into"):
        compute_surface(model, (x, y), xcoords=[0.0, 1.0], path=path, verbose=0)
    with pytest.raises(ValueError, match=r"^Expected `xcoords` to"):
        compute_surface(model, (x, y), xcoords=[0.0], verbose=0)
    with pytest.raises(ValueError, match=r"^A surface needs 2 directions, received: 3$"):
        compute_surface(model, (x, y), [surface.directions[0]] * 3, verbose=0)


@tensorflow_only
def test_a_streamed_dataset_is_read_again_at_every_point_of_a_line_or_a_surface(small_mlp, regression_data):
    import tensorflow as tf

    x, y = regression_data
    reads = []

    def counted():
        reads.append(1)
        yield from zip(np.split(x, 3), np.split(y, 3))

    dataset = tf.data.Dataset.from_generator(counted, output_signature=(
        tf.TensorSpec((None, 5), tf.float32), tf.TensorSpec((None, 1), tf.float32)))
    compute_line(small_mlp, dataset, coords=[0.0, 1.0, 2.0], seed=0, points_per_call=1, stream=True, verbose=0)
    assert len(reads) >= 3
    reads.clear()
    compute_surface(small_mlp, dataset, xcoords=[0.0, 1.0], seed=0, points_per_call=1, stream=True, verbose=0)
    assert len(reads) >= 4
