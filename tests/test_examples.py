"""Smoke tests of the U-Net example (examples/unet): data, PNG I/O, a short training run."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("flax")
pytest.importorskip("optax")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

from examples.unet import data, main, train  # noqa: E402


def test_generator_is_deterministic_and_prefix_stable():
    cfg = data.SceneConfig(size=32)
    x1, y1 = data.make_dataset(6, cfg, seed=3)
    x2, y2 = data.make_dataset(6, cfg, seed=3)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    # Sample i depends on (seed, stream, i) only, not on the dataset length.
    x3, y3 = data.make_dataset(2, cfg, seed=3)
    np.testing.assert_array_equal(x3, x1[:2])
    np.testing.assert_array_equal(y3, y1[:2])
    assert not np.array_equal(data.make_dataset(2, cfg, seed=4)[1], y3)
    assert not np.array_equal(data.make_dataset(2, cfg, seed=3, stream=1)[1], y3)

    assert x1.shape == (6, 32, 32, 1) and x1.dtype == np.float32
    assert y1.shape == (6, 32, 32) and y1.dtype == np.int32
    assert set(np.unique(y1)) == {0, 1, 2, 3}


def test_generator_options():
    rgb, _ = data.make_dataset(2, data.SceneConfig(size=16, channels=3))
    assert rgb.shape == (2, 16, 16, 3)
    # Higher imbalance: bigger blobs, so more blob pixels on average.
    _, even = data.make_dataset(8, data.SceneConfig(size=32, imbalance=1.0))
    _, skew = data.make_dataset(8, data.SceneConfig(size=32, imbalance=2.0))
    assert (skew == 1).mean() > (even == 1).mean()
    with pytest.raises(ValueError, match="channels"):
        data.make_dataset(1, data.SceneConfig(channels=2))


@pytest.mark.parametrize("channels", [1, 3])
def test_png_folder_round_trip(tmp_path, channels):
    images, masks = data.make_dataset(3, data.SceneConfig(size=16, channels=channels))
    data.save_png_folder(tmp_path, images, masks)
    loaded_images, loaded_masks = data.load_png_folder(tmp_path)
    np.testing.assert_array_equal(loaded_masks, masks)
    assert loaded_images.shape == images.shape and loaded_images.dtype == np.float32
    np.testing.assert_allclose(loaded_images, np.clip(images, 0, 1), atol=1 / 255)

    resized_images, resized_masks = data.load_png_folder(tmp_path, size=8)
    assert resized_images.shape == (3, 8, 8, channels) and resized_masks.shape == (3, 8, 8)
    assert set(np.unique(resized_masks)) <= set(np.unique(masks))  # nearest: no new labels

    (tmp_path / "masks" / "00001.png").unlink()
    with pytest.raises(FileNotFoundError, match="no mask"):
        data.load_png_folder(tmp_path)


def test_short_training_run_writes_outputs(tmp_path):
    out = tmp_path / "run"
    argv = ["--loss", "cross_entropy", "--steps", "12", "--size", "32", "--depth", "2"]
    argv += ["--width", "8", "--batch", "8", "--lr", "1e-2", "--num-train", "32"]
    argv += ["--num-val", "8", "--eval-every", "6", "--warmup", "2", "--out", str(out)]
    main.main(argv)

    for name in ("metrics.json", "curves.png", "samples.png"):
        assert (out / name).stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["steps_run"] == 12
    loss = metrics["history"]["loss"]
    assert np.mean(loss[-3:]) < np.mean(loss[:3])
    assert set(metrics["per_class"]) == set(data.CLASS_NAMES)
    assert 0.0 <= metrics["mean_foreground_iou"] <= 1.0
    assert len(metrics["history"]["val_iou"]) == 2


def test_resolve_loss_parses_weighted_sums():
    import segloss_jax as sl

    assert train.resolve_loss("cross_entropy") is sl.get_loss("cross_entropy")
    with pytest.raises(KeyError):
        train.resolve_loss("no_such_loss")
    logits = np.zeros((1, 4, 4, 3), np.float32)
    labels = np.zeros((1, 4, 4), np.int32)
    ce = float(sl.cross_entropy(logits, labels))
    np.testing.assert_allclose(float(train.resolve_loss("cross_entropy:2")(logits, labels)), 2 * ce)
    both = float(train.resolve_loss("cross_entropy+cross_entropy")(logits, labels))
    np.testing.assert_allclose(both, 2 * ce, rtol=1e-6)
