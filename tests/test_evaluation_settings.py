import dataclasses
import pickle

import pytest

from losslandscape.evaluation_settings import RECORDED, EvaluationSettings


def test_settings_are_frozen_picklable_and_record_what_the_file_keeps():
    settings = EvaluationSettings(batch_size=32, include_regularization=False, dtype_policy="mixed_bfloat16")
    assert pickle.loads(pickle.dumps(settings)) == settings
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.batch_size = 64
    assert settings.recorded() == {
        "batch_size": 32, "max_samples": None, "max_batches": None,
        "include_regularization": False, "dtype_policy": "mixed_bfloat16",
    }
    assert list(settings.recorded()) == list(RECORDED)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(batch_size=0), "Expected `batch_size` to be a positive integer or None, received: 0"),
        (dict(max_samples=-1), "Expected `max_samples` to be a positive integer or None, received: -1"),
        (dict(max_batches=2.5), "Expected `max_batches` to be a positive integer or None, received: 2.5"),
        (dict(chunk_size=True), "Expected `chunk_size` to be a positive integer or None, received: True"),
        (dict(points_per_call="fast"), 'Expected `points_per_call` to be a positive integer or "auto"'),
        (dict(engine="eager"), "Expected `engine` to be one of ('compiled', 'evaluate'), received: 'eager'"),
        (dict(engine="evaluate", include_regularization=False), "needs `engine='compiled'`"),
    ],
)
def test_a_bad_setting_fails_when_built(arguments, message):
    with pytest.raises(ValueError) as error:
        EvaluationSettings(**arguments)
    assert message in str(error.value)


def test_a_misspelled_setting_fails_in_the_caller_not_in_a_worker():
    with pytest.raises(TypeError, match="batchsize"):
        EvaluationSettings(batchsize=32)


def test_model_evaluate_is_accepted_with_regularization_and_curvature_settings_are_recorded():
    from losslandscape.curvature_evaluator import CurvatureSettings

    assert EvaluationSettings(engine="evaluate").engine == "evaluate"
    settings = EvaluationSettings(curvature=CurvatureSettings(max_iterations=12, tolerance=1e-4, seed=5))
    assert settings.recorded() == {
        "batch_size": None, "max_samples": None, "max_batches": None, "include_regularization": True,
        "dtype_policy": None, "lanczos_max_iterations": 12, "lanczos_tolerance": 1e-4, "lanczos_seed": 5,
    }
