"""Content hashes tell data apart by values, shapes, dtypes and structure, and nothing else."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from losslandscape.hashing import content_hash

_leaves = st.sampled_from([np.zeros(2, "float32"), np.ones(2, "float32"), np.zeros(2, "float64"), np.zeros(3), None])
_nests = st.recursive(
    _leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.tuples(children, children),
        st.dictionaries(st.sampled_from(["a", "b", "c"]), children, max_size=3),
    ),
    max_leaves=6,
)


def _canonical(nest):
    """An independent description of what a model reads: list and tuple alike, dict keys unordered."""
    if isinstance(nest, dict):
        return ("dict", tuple(sorted((key, _canonical(value)) for key, value in nest.items())))
    if isinstance(nest, (list, tuple)):
        return ("sequence", tuple(_canonical(item) for item in nest))
    return None if nest is None else ("array", str(nest.dtype), nest.shape, nest.tobytes())


@settings(max_examples=300, deadline=None)
@given(_nests, _nests)
def test_two_nests_hash_alike_exactly_when_a_model_reads_them_alike(first, second):
    assert (content_hash([first]) == content_hash([second])) == (_canonical(first) == _canonical(second))


def test_a_dict_is_hashed_whatever_the_order_of_its_keys_and_apart_from_a_list():
    x1, x2 = np.zeros(3), np.ones(3)
    assert content_hash([{"a": x1, "b": x2}]) == content_hash([{"b": x2, "a": x1}])
    assert content_hash([{"a": x1, "b": x2}]) != content_hash([{"a": x2, "b": x1}])
    assert content_hash([[x1, x2]]) != content_hash([{"a": x1, "b": x2}])
    assert content_hash([[x1, x2]]) == content_hash([(x1, x2)])
    assert content_hash([[x1, x2]]) != content_hash([[x2, x1]])
    assert content_hash([x1, x2]) == content_hash(iter([x1, x2]))  # a generator of arrays, as the weights are hashed


def test_the_hashes_saved_in_files_stay_the_same():
    """Run fingerprints are saved in landscape files: a changed hash would refuse to resume every existing file."""
    x = np.arange(3, dtype="float32")
    assert content_hash([x]) == "b9fbb4a06c34c2ecb3d9c02bbb707989"  # as before nests were hashed: weights' hashes hold
    assert content_hash([({"a": x, 1: None}, [x])]) == "6ec0ee835686e54b347bbb138a45d996"
