"""Tests of the U-Net example (examples/unet): data, metrics, PNG I/O, short training runs."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

pytest.importorskip("flax")
pytest.importorskip("optax")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

from examples.unet import compare, data, evaluate, main, train  # noqa: E402


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
    assert set(np.unique(y1)) <= {0, 1, 2, 3, data.IGNORE_LABEL}
    _, easy = data.make_dataset(6, cfg.easy(), seed=3)
    assert set(np.unique(easy)) == {0, 1, 2, 3}


def _present(masks, c):
    return (masks == c).any(axis=(1, 2))


def test_scene_regimes():
    hard = data.SceneConfig(size=32, ignore=False)
    _, y = data.make_dataset(48, hard)
    _, y_easy = data.make_dataset(48, hard.easy())
    # absent: some images lack a class; otherwise every class is in every image.
    assert all(_present(y_easy, c).all() for c in (1, 2, 3))
    assert not all(_present(y, c).all() for c in (1, 2, 3))
    # thin: narrower curves (area per skeleton pixel) that reach the image border.
    widths = [(m == 2).sum() / evaluate.skeleton(m == 2).sum() for m in (y, y_easy)]
    assert widths[0] < 0.8 * widths[1]
    edges = np.concatenate([y[:, [0, -1]], y[:, :, [0, -1]].transpose(0, 2, 1)], axis=1)
    assert (_present(edges, 2) == _present(y, 2)).all()
    # tiny: fewer and smaller discs.
    assert (y == 3).sum() < 0.25 * (y_easy == 3).sum()
    # ignore: unlabelled rectangles only when on.
    _, y_ignore = data.make_dataset(8, dataclasses.replace(hard, ignore=True))
    assert (y_ignore == data.IGNORE_LABEL).any() and not (y == data.IGNORE_LABEL).any()


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
    # The smallest U-Net, _tiny_run's settings below (one compiled program for all these
    # runs): the command line and its outputs are the point.
    argv = ["--loss", "cross_entropy", "--steps", "4", "--size", "16", "--depth", "1"]
    argv += ["--width", "4", "--batch", "8", "--lr", "1e-2", "--num-train", "16"]
    argv += ["--num-val", "8", "--eval-every", "2", "--warmup", "1", "--out", str(out)]
    main.main(argv)

    for name in ("metrics.json", "curves.png", "samples.png"):
        assert (out / name).stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["steps_run"] == 4
    loss = metrics["history"]["loss"]
    assert np.mean(loss[-3:]) < np.mean(loss[:3])
    assert set(metrics["per_class"]) == set(data.CLASS_NAMES)
    assert 0.0 <= metrics["mean_foreground_iou"] <= 1.0
    assert len(metrics["history"]["val_iou"]) == 2


def test_resolve_loss_parses_weighted_sums():
    import jax

    import segloss_jax as sl

    assert train.resolve_loss("cross_entropy") is sl.get_loss("cross_entropy")
    with pytest.raises(KeyError):
        train.resolve_loss("no_such_loss")
    logits = np.zeros((1, 4, 4, 3), np.float32)
    labels = np.zeros((1, 4, 4), np.int32)
    # Jitted, as in the train step (an eager call compiles op by op).
    ce = float(jax.jit(sl.cross_entropy)(logits, labels))
    twice = jax.jit(train.resolve_loss("cross_entropy:2"))
    np.testing.assert_allclose(float(twice(logits, labels)), 2 * ce)
    both = float(jax.jit(train.resolve_loss("cross_entropy+cross_entropy"))(logits, labels))
    np.testing.assert_allclose(both, 2 * ce, rtol=1e-6)


def test_scene_flags():
    parser = main.argparse.ArgumentParser()
    main.add_config_args(parser)
    assert main.config_from_args(parser.parse_args([])).scene == data.SceneConfig()
    cfg = main.config_from_args(parser.parse_args(["--no-thin", "--imbalance", "1"]))
    assert not cfg.scene.thin and cfg.scene.imbalance == 1.0 and cfg.scene.tiny
    easy = main.config_from_args(parser.parse_args(["--easy"])).scene
    assert easy == data.SceneConfig().easy() and not easy.ignore


def _one_hot_probs(labels, num_classes):
    return np.eye(num_classes, dtype=np.float32)[np.where(labels == data.IGNORE_LABEL, 0, labels)]


def test_evaluate_respects_ignored_pixels_and_counts_breaks():
    gt = np.zeros((2, 16, 16), np.int32)
    gt[:, 8, :] = 2  # a 1 px line across each image
    gt[0, 2:5, 2:5] = 1  # a blob in image 0 only
    gt[:, 12:, 12:] = data.IGNORE_LABEL
    pred = gt.copy()
    pred[gt == data.IGNORE_LABEL] = 1  # wrong where nothing is known: must not count
    m = evaluate.evaluate(_one_hot_probs(pred, 3), gt, ("background", "blob", "curve"))
    for name in ("blob", "curve"):
        c = m["per_class"][name]
        assert c["iou"] == 1.0 and c["hd95"] == 0.0 and c["nsd"] == 1.0
        assert c["components_error"] == 0.0 and c["cldice"] == 1.0 and c["biou"] == 1.0
    assert m["per_class"]["blob"]["absent_fp"] == 0.0 and m["ece"] < 1e-6

    pred[1, 8, 5] = 0  # break the line of image 1
    pred[1, 2, 2] = 1  # a blob pixel where there is none
    m = evaluate.evaluate(_one_hot_probs(pred, 3), gt, ("background", "blob", "curve"))
    curve = m["per_class"]["curve"]
    assert curve["components_error"] == 0.5  # one extra component, in one of two images
    assert 0.9 < curve["cldice"] < 1.0 and curve["iou"] < 1.0 and curve["biou"] < 1.0
    assert m["per_class"]["blob"]["absent_fp"] == 1.0


def _tiny_run(tmp_path, name, **overrides) -> train.Config:
    """A run of a few steps on 16 px scenes with a 1-level U-Net (fast to compile)."""
    cfg = dict(loss="cross_entropy", steps=4, size=16, depth=1, width=4, batch=8, warmup=1)
    cfg.update(num_train=16, num_val=8, eval_every=2, checkpoint_every=0)
    return train.Config(**{**cfg, "out": str(tmp_path / name), **overrides})


def test_loss_kwargs_reach_the_loss(tmp_path):
    # The default number of steps: the same program as the other runs of cross_entropy.
    plain, _ = train.run(_tiny_run(tmp_path, "plain"), plots=False)
    smooth, _ = train.run(
        _tiny_run(tmp_path, "smooth", loss_kwargs={"label_smoothing": 0.3}), plots=False
    )
    assert smooth["history"]["loss"][0] != pytest.approx(plain["history"]["loss"][0], rel=1e-3)
    with pytest.raises(TypeError, match="no_such_keyword"):
        argv = ["--size", "16", "--depth", "1", "--num-train", "16", "--num-val", "8"]
        main.main([*argv, "--loss-kwargs", '{"no_such_keyword": 1}', "--out", str(tmp_path)])


def test_bfloat16_run(tmp_path):
    metrics, probs = train.run(_tiny_run(tmp_path, "bf16", dtype="bfloat16"), plots=False)
    assert metrics["param_dtype"] == "bfloat16" and metrics["status"] == "ok"
    assert probs.dtype == np.float32  # logits are cast before the loss and the softmax
    assert all(np.isfinite(metrics["history"]["loss"]))


def test_checkpoint_resume_continues_from_the_saved_step(tmp_path):
    cfg = _tiny_run(tmp_path, "ckpt", checkpoint_every=2)
    full, probs_full = train.run(cfg, plots=False)
    ckpts = tmp_path / "ckpt" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir() if p.name.isdigit()) == ["2", "4"]
    shutil.rmtree(ckpts / "4")  # as if stopped after step 2
    resumed, probs_resumed = train.run(dataclasses.replace(cfg, resume=True), plots=False)
    assert full["start_step"] == 0 and resumed["start_step"] == 2
    assert resumed["history"]["step"] == [3, 4]
    # Model and optimizer state restored: the same final model as without the break.
    np.testing.assert_array_equal(probs_resumed, probs_full)
    assert resumed["history"]["loss"] == full["history"]["loss"][2:]


def test_short_comparison_reports_mean_and_std_over_seeds(tmp_path):
    base = _tiny_run(tmp_path, "unused")
    results = compare.run_comparison(["cross_entropy", "dice"], [0, 1], base, str(tmp_path / "c"))
    for name in ("RESULTS.md", "results.json", "comparison.png"):
        assert (tmp_path / "c" / name).stat().st_size > 0
    saved = json.loads((tmp_path / "c" / "results.json").read_text())
    assert saved["seeds"] == [0, 1]
    runs = saved["runs"]["dice"]
    assert [r["config"]["seed"] for r in runs] == [0, 1]
    ious = [r["per_class"]["curve"]["iou"] for r in runs]
    assert ious[0] != ious[1]  # the seed changes the run
    s = saved["summary"]["dice"]["curve/iou"]
    assert s["mean"] == pytest.approx(np.mean(ious))
    assert s["std"] == pytest.approx(np.std(ious, ddof=1))
    table = (tmp_path / "c" / "RESULTS.md").read_text()
    assert f"{s['mean']:.3f} ± {s['std']:.3f}" in table and "With 2 seeds per loss" in table
    assert results["separated"] == saved["separated"]
