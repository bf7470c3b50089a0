import pickle

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="the reproductions train through tf.data")

from reproductions import depth_study, landscape, sanity_checks, train
from reproductions.data import load_cifar10
from reproductions.models import cifar_resnet, cifar_vgglike


@pytest.mark.parametrize("depth, published", [(20, 0.27e6), pytest.param(56, 0.85e6, marks=pytest.mark.slow),
                                                    pytest.param(110, 1.7e6, marks=pytest.mark.slow)])
def test_resnet_parameter_counts_match_the_published_figures(depth, published):
    count = cifar_resnet(depth).count_params()
    assert abs(count - published) / published < 0.03
    without_shortcuts = cifar_resnet(depth, shortcut=False)
    assert not any("add" in layer.name for layer in without_shortcuts.layers)
    assert cifar_vgglike(depth).count_params() == without_shortcuts.count_params()


def test_weight_decay_is_an_l2_penalty_on_every_kernel():
    model = cifar_resnet(20, weight_decay=2.5e-4)
    kernels = [layer for layer in model.layers if hasattr(layer, "kernel")]
    assert kernels and all(layer.kernel_regularizer.l2 == pytest.approx(2.5e-4) for layer in kernels)


def test_cifar_pickles_load_with_pixel_order_and_mean_subtraction(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        rows = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
        images[name] = rows
        with open(folder / name, "wb") as file:
            pickle.dump({b"data": rows, b"labels": list(rng.integers(0, 10, 4))}, file)
    (x_train, y_train), (x_test, y_test) = load_cifar10(str(tmp_path))
    assert x_train.shape == (20, 32, 32, 3) and x_test.shape == (4, 32, 32, 3) and y_train.shape == (20,)
    raw = np.concatenate([images[f"data_batch_{i}"] for i in range(1, 6)]).astype(np.float32) / 255
    mean = raw.mean(axis=0)
    # Pixel (row 2, column 5) of image 7: red at 2*32+5, green at 1024 + that, blue at 2048 + that.
    for channel in range(3):
        index = channel * 1024 + 2 * 32 + 5
        assert x_train[7, 2, 5, channel] == pytest.approx(raw[7, index] - mean[index], abs=1e-6)
    np.testing.assert_allclose(x_train.mean(axis=0), 0, atol=1e-6)


def test_missing_cifar_files_name_both_ways(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        load_cifar10(str(tmp_path))


@pytest.mark.slow
def test_smoke_runs_of_train_landscape_and_sanity_checks(tmp_path, capsys):
    assert train.main(["--smoke", "--out", str(tmp_path / "train")]) == 0
    checkpoint = tmp_path / "train" / "model_final.keras"
    assert checkpoint.exists() and (tmp_path / "train" / "result.json").exists()
    assert landscape.main([str(checkpoint), "--smoke", "--out", str(tmp_path / "landscape")]) == 0
    assert len(list((tmp_path / "landscape").glob("*.png"))) == 3
    results = sanity_checks.run("cifar10", tmp_path / "sanity", smoke=True)
    assert len(results) == 6
    assert {r["check"] for r in results} == {"batch_size", "weight_decay", "optimizer"}
    for row in results:
        assert np.isfinite(row["rise_at_0.5"]) and 0 < row["doubling_width"] <= 2.0 and 0 < row["width_plus_1"] <= 2.0
    for check in ("batch_size", "weight_decay", "optimizer"):
        assert (tmp_path / "sanity" / f"{check}_1d.png").exists()
        assert (tmp_path / "sanity" / f"{check}_contour.png").exists()
    assert "| batch size |" in (tmp_path / "sanity" / "table.md").read_text()


def test_sharpness_numbers_on_known_curves():
    from losslandscape import LossLine, sharpness

    coords = np.linspace(-1, 1, 201)

    def of(values):
        return sharpness(LossLine(coords, {"train": values}, {"train": {}}))

    narrow, wide = of(1 + 4 * coords**2), of(1 + coords**2)
    assert narrow["rise_at_0.5"] == pytest.approx(1.0, abs=1e-3)
    assert wide["rise_at_0.5"] == pytest.approx(0.25, abs=1e-3)
    assert narrow["doubling_width"] == pytest.approx(1.0, abs=1e-3)  # 1 + 4α² = 2 at α = ±0.5
    assert wide["doubling_width"] == pytest.approx(2.0, abs=1e-3)    # reaches 2 only at the ends
    shifted = of(3 + 4 * coords**2)
    assert shifted["width_plus_1"] == pytest.approx(narrow["width_plus_1"], abs=1e-3)  # independent of L(0)
    assert shifted["doubling_width"] == pytest.approx(2 * np.sqrt(3 / 4), abs=1e-3)
    lopsided = of(1 + np.where(coords < 0, 16, 1) * coords**2)  # 2·L(0) at α = -0.25 and at α = 1
    assert lopsided["doubling_width"] == pytest.approx(1.25, abs=1e-3)
    with pytest.raises(ValueError, match=r"around α = 0, but the line spans \[1, 2\]"):
        sharpness(LossLine(np.linspace(1, 2, 5), {"train": np.ones(5)}, {"train": {}}))


def test_depth_study_numbers_on_known_surfaces():
    x = np.linspace(-1, 1, 21)
    bowl = np.add.outer(x**2 + 0.25 * x, 2 * x**2 - 0.1 * x) + 1.0
    assert depth_study.local_minima(bowl) == 1
    assert depth_study.nonconvex_fraction(x, x, bowl) == 0.0
    # Four narrow wells at (±0.5, ±0.5) on the bowl: five minima, and the rims of the wells bend down.
    wells = bowl - sum(
        np.exp(-np.add.outer((x - a) ** 2, (x - b) ** 2) / 0.01) for a in (-0.5, 0.5) for b in (-0.5, 0.5)
    )
    assert depth_study.local_minima(wells) == 5
    assert 0.1 < depth_study.nonconvex_fraction(x, x, wells) < 0.5
    saddle = np.subtract.outer(x**2, x**2) + 5.0
    assert depth_study.nonconvex_fraction(x, x, saddle) == 1.0
    assert np.isnan(depth_study.nonconvex_fraction(x, x, saddle + 20.0))  # nothing below the cap of 10
    assert depth_study.local_minima(np.ones((5, 5))) == 0  # a plateau has no strict minimum


@pytest.mark.slow
def test_depth_study_smoke_run_writes_its_figures_and_table(tmp_path):
    results = depth_study.run("digits", tmp_path, smoke=True, families=["resnet", "resnet_noshort"])
    assert [(r["family"], r["depth"]) for r in results] == [("resnet", 8), ("resnet_noshort", 8)]
    for row in results:
        assert np.isfinite(row["loss_at_0"]) and 0 <= row["ratio_above_threshold"] <= 1 and row["mean_ratio"] >= 0
    assert (tmp_path / "depth_contour.png").exists() and (tmp_path / "depth_eigen_ratio.png").exists()
    assert "| ResNet-noshort-8 |" in (tmp_path / "table.md").read_text()
