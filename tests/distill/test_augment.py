"""Augmentation per input kind, consistent teaching (teacher and student see one batch), mixup, and learning."""

import json

import numpy as np
import pytest

from edgekit._tf import tensorflow, tf_keras
from edgekit.distill import distill
from edgekit.distill.augment import Augmentation, augment_batch, infer_kind, resolve_augmentation
from edgekit.distill.recipe import FIT_AUGMENT_MIN_EPOCHS, fit_recipe
from edgekit.errors import BadInputError

tf = tensorflow()
keras = tf_keras()
L = keras.layers
SHAPES = {"signal": (16, 40, 1), "image": (16, 12, 12, 3), "spectrogram": (16, 20, 12, 1)}


def _run(x, kind, seed=(1, 2), y=None, mixup=0.0, flip=False):
    out_x, out_y = augment_batch(x, y, Augmentation(kind, mixup, flip), tf.constant(seed, tf.int64))
    return out_x.numpy(), None if out_y is None else out_y.numpy()


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_each_kind_keeps_shape_and_dtype_repeats_under_a_seed_and_changes_the_input(kind):
    x = np.random.default_rng(0).normal(size=SHAPES[kind]).astype(np.float32)
    a, _ = _run(x, kind)
    assert a.shape == x.shape and a.dtype == x.dtype
    np.testing.assert_array_equal(a, _run(x, kind)[0])
    assert not np.allclose(a, _run(x, kind, seed=(1, 3))[0])
    changed = np.mean(~np.isclose(a, x).reshape(len(x), -1).all(axis=1))
    assert changed > 0.5, f"{kind}: only {changed:.0%} of the samples changed"


def test_signal_shift_moves_a_spike_by_at_most_a_tenth_of_the_length():
    x = np.zeros((64, 40, 1), np.float32)
    x[:, 20, 0] = 1.0
    a, _ = _run(x, "signal")
    peaks = a[:, :, 0].argmax(axis=1)
    assert np.all(np.abs(peaks - 20) <= 4) and len(set(peaks.tolist())) > 3
    assert 0.79 < a[:, :, 0].max(axis=1).min() and a[:, :, 0].max(axis=1).max() < 1.25  # scale 0.8..1.2 (+noise)


def test_images_are_mirrored_only_with_flip():
    x = np.zeros((64, 16, 16, 1), np.float32)
    x[:, :, :8] = 1.0  # bright left half
    for flip, expect_mirrored in ((False, False), (True, True)):
        a, _ = _run(x, "image", flip=flip)
        left, right = a[:, :, :4].mean(axis=(1, 2, 3)), a[:, :, -4:].mean(axis=(1, 2, 3))
        assert np.all((left > right) | (right > left))
        assert bool(np.any(right > left)) == expect_mirrored
        assert np.all(np.isin(a, (0.0, 1.0)))  # shifted with edge padding: no new values


def test_spectrogram_masks_whole_bands_with_the_sample_mean():
    x = np.random.default_rng(1).uniform(1, 2, size=(32, 20, 12, 1)).astype(np.float32)
    a, _ = _run(x, "spectrogram")
    masked = ~np.isclose(a, x)
    assert masked.any()
    for sample, mask in zip(range(len(x)), masked):
        np.testing.assert_allclose(a[sample][mask], x[sample].mean(), rtol=1e-5)
        rows, cols = mask[:, :, 0].all(axis=1), mask[:, :, 0].all(axis=0)
        assert np.array_equal(mask[:, :, 0], rows[:, None] | cols[None, :])  # only full time / frequency bands


def test_mixup_mixes_inputs_and_labels_with_the_same_weights():
    y = np.eye(10, dtype=np.float32)[np.arange(64) % 10]
    x = 3.0 * y  # the input is the label: mixing both the same way keeps x == 3 y
    a, b = _run(x, "none", y=y, mixup=0.4)
    np.testing.assert_allclose(a, 3.0 * b, atol=1e-5)
    np.testing.assert_allclose(b.sum(axis=1), 1.0, atol=1e-5)
    assert np.mean(b.max(axis=1) < 0.99) > 0.3  # most rows are mixtures


def test_kind_is_inferred_from_the_input_shape_and_bad_options_name_the_field():
    assert [infer_kind(s) for s in ((None, 40, 1), (None, 32, 32, 3), (None, 8, 8, 1), (None, 49, 40, 1),
                                    (None, 12))] == ["signal", "image", "image", "spectrogram", "none"]
    assert resolve_augmentation("auto", (None, 12)).active is False
    with pytest.raises(BadInputError, match="augment must be one of"):
        resolve_augmentation("rotate", (None, 40, 1))
    with pytest.raises(BadInputError, match="augment='image' needs inputs of rank 3"):
        resolve_augmentation("image", (None, 40, 1))
    with pytest.raises(BadInputError, match="mixup must be"):
        resolve_augmentation("auto", (None, 40, 1), mixup=-1)
    assert resolve_augmentation("auto", (None, None, 1)).kind == "none"  # variable length: nothing to shift by
    assert resolve_augmentation("auto", (None, 40, 1), task="regression").kind == "none"  # targets would move
    with pytest.raises(BadInputError, match="needs a fixed input size"):
        resolve_augmentation("signal", (None, None, 1))
    with pytest.raises(BadInputError, match="flip applies to augment='image'"):
        resolve_augmentation("signal", (None, 40, 1), flip=True)


def test_fit_augments_only_with_a_patient_schedule_unless_told():
    assert fit_recipe(epochs=FIT_AUGMENT_MIN_EPOCHS - 1)["augment"] == "none"
    assert fit_recipe(epochs=FIT_AUGMENT_MIN_EPOCHS)["augment"] == "auto"
    assert fit_recipe("signal", epochs=5)["augment"] == "signal" and fit_recipe(epochs=200)["mixup"] == 0.0


SEEN = {}


class _Recorder(keras.Model):
    """A classifier that keeps the last batch it was trained or queried on (teacher: every call)."""

    def __init__(self, role, record_inference):
        super().__init__(name=role)
        self.role, self.record_inference = role, record_inference
        self.flat, self.dense = L.Flatten(), L.Dense(4)
        SEEN[role] = tf.Variable(tf.zeros((0,)), shape=tf.TensorShape(None), trainable=False)

    def call(self, x, training=False):
        if training or self.record_inference:
            SEEN[self.role].assign(tf.identity(x))
        return self.dense(self.flat(x))


def test_teacher_sees_the_same_augmented_batch_as_the_student():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 24, 1)).astype(np.float32), rng.integers(0, 4, 32)
    teacher, student = _Recorder("teacher", True), _Recorder("student", False)
    teacher(x[:2])
    distill(teacher, student, x, y, x[:8], y[:8], epochs=1, batch_size=32, verbose=0, augment="signal", mixup=0.4)
    seen_teacher, seen_student = SEEN["teacher"].numpy(), SEEN["student"].numpy()
    assert seen_student.shape == x.shape
    np.testing.assert_array_equal(seen_teacher, seen_student)
    assert not np.allclose(np.sort(seen_student.ravel()), np.sort(x.ravel()), atol=1e-3)  # augmented, not raw


def _bumps(n, rng, length=48):
    """4 classes: a bump centred in one of four quarters of the window (+-2 samples), random height, noise."""
    y = rng.integers(0, 4, n)
    centre = 6 + 12 * y + rng.integers(-2, 3, n)
    height = rng.uniform(0.7, 1.3, n)
    x = height[:, None] * np.exp(-0.5 * ((np.arange(length)[None, :] - centre[:, None]) / 2.0) ** 2)
    return (x + 0.1 * rng.normal(size=x.shape)).astype(np.float32)[..., None], y


def _conv(width, seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([L.Input((48, 1)), L.Conv1D(width, 5, strides=2, activation="relu"), L.Flatten(),
                             L.Dense(4)])


@pytest.mark.slow
def test_distillation_with_augmentation_still_learns():
    rng = np.random.default_rng(0)
    x, y = _bumps(800, rng)
    x_val, y_val = _bumps(200, rng)
    teacher = _conv(16, 0)
    teacher.compile(keras.optimizers.Adam(3e-3),
                    keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    teacher.fit(x, y, epochs=5, batch_size=64, verbose=0)
    student = _conv(4, 1)
    result = distill(teacher, student, x, y, x_val, y_val, epochs=6, verbose=0, augment="auto", mixup=0.2,
                     learning_rate=3e-3)
    assert any("augmentation: signal + mixup 0.2" in n for n in result.notices)
    accuracy = np.mean(np.argmax(student.predict(x_val, verbose=0), axis=1) == y_val)
    assert accuracy > 0.8, f"student accuracy {accuracy:.2f} (chance 0.25)"
    assert result.val_metrics["accuracy"] == pytest.approx(accuracy, abs=1e-6)


@pytest.mark.slow
def test_distill_command_takes_augment_and_mixup(tmp_path):
    from click.testing import CliRunner

    from edgekit.cli.main import main
    from edgekit.model_io import save_model

    rng = np.random.default_rng(2)
    x, y = _bumps(300, rng)
    teacher = _conv(8, 0)
    teacher.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x, y, epochs=2, batch_size=64, verbose=0)
    save_model(teacher, tmp_path / "teacher.h5")
    np.savez(tmp_path / "train.npz", x=x, y=y)
    base = ["distill", str(tmp_path / "teacher.h5"), "--data", str(tmp_path / "train.npz"), "--width", "0.5",
            "--epochs", "1", "--out", str(tmp_path / "student.h5"), "--json"]
    result = CliRunner().invoke(main, base + ["--augment", "signal", "--mixup", "0.2"])
    assert result.exit_code == 0, result.output
    notices = json.loads(result.output[result.output.index("{"):])["notices"]
    assert any(n.startswith("augmentation: signal + mixup 0.2") for n in notices), notices
    refused = CliRunner().invoke(main, base + ["--augment", "image"])
    assert refused.exit_code == 2 and "augment='image' needs inputs of rank 3" in refused.output
