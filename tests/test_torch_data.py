"""PyTorch's own data on the torch backend: a DataLoader read once, or at every point with stream=True."""

import numpy as np
import pytest

from conftest import evaluate_at, torch_only, weights_at
from losslandscape import compute_surface, random_directions
from losslandscape.datasets import prepare_data

pytestmark = torch_only
COORDS = np.linspace(-0.5, 0.5, 3)


def _loader(x, y, sample_weight=None, batch_size=50, shuffle=False):
    import torch

    parts = [torch.tensor(x), torch.tensor(y)] + ([] if sample_weight is None else [torch.tensor(sample_weight)])
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*parts), batch_size=batch_size, shuffle=shuffle)


@pytest.mark.parametrize("stream", [False, True])
def test_a_data_loader_gives_model_evaluate_at_every_point(trained_cnn, image_data, stream):
    x, y, sample_weight = image_data
    directions = random_directions(trained_cnn, seed=4)
    surface = compute_surface(trained_cnn, _loader(x, y, sample_weight), directions, COORDS, stream=stream,
                              points_per_call=1, verbose=0)
    origin = [np.array(v.numpy()) for v in trained_cnn.trainable_variables]
    for i, a in enumerate(COORDS):
        for j, b in enumerate(COORDS):
            expected = evaluate_at(trained_cnn, weights_at(trained_cnn, origin, directions, (a, b)), x=x, y=y,
                                   sample_weight=sample_weight, batch_size=50)
            assert surface.losses["train"][i, j] == pytest.approx(expected["loss"], rel=1e-5)
            assert surface.metrics["train"]["accuracy"][i, j] == pytest.approx(expected["accuracy"], rel=1e-5)


def test_a_shuffling_loader_is_read_once_so_every_point_sees_the_same_samples(trained_cnn, image_data):
    x, y, _ = image_data
    batches = prepare_data(_loader(x, y, shuffle=True, batch_size=64))
    assert (batches.num_samples, batches.batch_size) == (200, 64)
    first = np.asarray(batches.arrays[0].cpu())
    np.testing.assert_array_equal(np.sort(first.reshape(200, -1), axis=0), np.sort(x.reshape(200, -1), axis=0))


def test_max_samples_and_max_batches_cut_a_loader(image_data):
    x, y, _ = image_data
    assert prepare_data(_loader(x, y), max_samples=120).num_samples == 120
    assert prepare_data(_loader(x, y), max_batches=3).num_samples == 150
    assert prepare_data(_loader(x, y), max_samples=120, stream=True).num_samples == 120


@pytest.mark.parametrize("stream", [False, True])
def test_an_empty_loader_is_refused_before_any_work(image_data, stream):
    x, y, _ = image_data
    with pytest.raises(ValueError, match="The dataset is empty"):
        prepare_data(_loader(x[:0], y[:0]), stream=stream)


@pytest.mark.parametrize("stream", [False, True])
def test_a_loader_of_tensors_that_require_grad_is_read_as_their_values(image_data, stream):
    import torch

    x, y, _ = image_data
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.tensor(x, requires_grad=True), torch.tensor(y)), batch_size=64)
    batches = prepare_data(loader, stream=stream)
    assert (batches.num_samples, batches.batch_size) == (200, 64)
    first_x, first_y = batches.first_batch()
    np.testing.assert_array_equal(np.asarray(first_x.detach().cpu()), x[:64])
    np.testing.assert_array_equal(np.asarray(first_y.cpu()), y[:64])


def test_a_loader_whose_batches_differ_in_shape_is_refused_with_what_to_do(image_data):
    import torch

    x, y, _ = image_data
    ragged = [(torch.tensor(x[:50]), torch.tensor(y[:50])), (torch.tensor(x[50:100, :4]), torch.tensor(y[50:100]))]
    loader = torch.utils.data.DataLoader(ragged, batch_size=None)
    with pytest.raises(ValueError) as error:
        prepare_data(loader)
    assert str(error.value).startswith(
        "The dataset's batches could not be joined into arrays (their shapes differ beyond the batch axis). "
        "Pad them to one shape, or pass stream=True. (")
    assert prepare_data(loader, stream=True).num_samples == 100


def test_k_points_per_call_read_a_streamed_loader_as_model_evaluate_does(small_mlp, regression_data):
    x, y = regression_data
    directions = random_directions(small_mlp, seed=4)
    surface = compute_surface(small_mlp, _loader(x, y, batch_size=40), directions, COORDS, stream=True,
                              points_per_call=3, verbose=0)
    origin = [np.array(v.numpy()) for v in small_mlp.trainable_variables]
    for i, a in enumerate(COORDS):
        for j, b in enumerate(COORDS):
            expected = evaluate_at(small_mlp, weights_at(small_mlp, origin, directions, (a, b)), x=x, y=y,
                                   batch_size=40)
            assert surface.losses["train"][i, j] == pytest.approx(expected["loss"], rel=1e-5)


def test_a_streamed_loader_gives_model_evaluate_its_batches_and_is_hashed_by_its_contents(trained_cnn, image_data):
    x, y, sample_weight = image_data
    streamed = prepare_data(_loader(x, y, sample_weight), stream=True)
    expected = trained_cnn.evaluate(x, y, sample_weight=sample_weight, batch_size=50, verbose=0, return_dict=True)
    found = trained_cnn.evaluate(**streamed.evaluate_arguments(), verbose=0, return_dict=True)
    assert found == pytest.approx(expected, rel=1e-6)
    relabelled = y.copy()
    relabelled[-1] = (relabelled[-1] + 1) % 3
    assert prepare_data(_loader(x, y, sample_weight), stream=True).fingerprint() == streamed.fingerprint()
    assert prepare_data(_loader(x, relabelled, sample_weight), stream=True).fingerprint() != streamed.fingerprint()
    assert prepare_data(_loader(x, y), stream=True).fingerprint() != streamed.fingerprint()
