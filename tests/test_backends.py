import subprocess
import sys


def test_missing_backend_names_the_extra_to_install():
    code = "import sys; sys.modules['tensorflow'] = None; import losslandscape"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "pip install 'losslandscape[tensorflow-cpu]'" in result.stderr


def test_vectorized_map_converts_bitcast_without_a_per_point_loop():
    import numpy as np
    import tensorflow as tf

    import losslandscape.backends.tensorflow  # noqa: F401  (registers the rule)

    values = np.random.default_rng(0).normal(size=(5, 3, 4)).astype("float32")
    values[0, 0, 0] = -0.0
    as_int = tf.vectorized_map(lambda t: tf.bitcast(t, tf.int32), tf.constant(values), fallback_to_while_loop=False)
    np.testing.assert_array_equal(as_int.numpy(), values.view(np.int32))
    as_bytes = tf.vectorized_map(lambda t: tf.bitcast(t, tf.uint8), tf.constant(values), fallback_to_while_loop=False)
    np.testing.assert_array_equal(as_bytes.numpy(), values.view(np.uint8).reshape(5, 3, 4, 4))


def test_rebatched_device_arrays_keep_every_sample_once():
    import numpy as np

    from losslandscape.datasets import prepare_data

    x = np.arange(10, dtype="float32")[:, None]
    batches = prepare_data((x, x), batch_size=3)
    wider = batches.with_min_batch_size(4)
    assert (batches.batch_size, wider.batch_size) == (3, 4)
    assert batches.with_min_batch_size(2).batch_size == 3
    seen = []
    wider.for_each_batch(lambda batch: seen.append(batch[0].numpy()))
    assert [len(b) for b in seen] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(seen), x)
