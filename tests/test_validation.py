import numpy as np
import pytest

from losslandscape.validation import check_positive_int, check_writable, checked_coords


def test_coords_come_back_as_float64():
    coords = checked_coords("xcoords", [0, 1, 3])
    assert coords.dtype == np.float64
    np.testing.assert_array_equal(coords, [0.0, 1.0, 3.0])


@pytest.mark.parametrize(
    "coords, message",
    [
        ([0.0, np.nan], "`xcoords` must be finite, received: [ 0. nan]"),
        ([0.0, 0.0], "Expected `xcoords` to be strictly increasing, received: [0. 0.]. Sort them and drop repeats, "
                     "e.g. with np.unique."),
        ([1.0], "Expected `xcoords` to be a 1D sequence of at least 2 values, received shape (1,). "
                "Use e.g. np.linspace(-1, 1, 21)."),
    ],
)
def test_bad_coords_are_named_with_the_fix(coords, message):
    with pytest.raises(ValueError) as error:
        checked_coords("xcoords", coords)
    assert str(error.value) == message


@pytest.mark.parametrize("value", [None, 1, 2, np.int64(7)])
def test_positive_integers_and_none_pass(value):
    check_positive_int("chunk_size", value)


@pytest.mark.parametrize("value", [0, -3, 2.5, 1.0, True, "4"])
def test_other_values_are_refused(value):
    with pytest.raises(ValueError, match=f"Expected `chunk_size` to be a positive integer or None, received: {value!r}"):
        check_positive_int("chunk_size", value)


def test_a_file_in_an_existing_writable_folder_passes(tmp_path):
    check_writable(tmp_path / "surface.h5")
