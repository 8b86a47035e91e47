"""The Distiller: logits tapping, loss terms, unlabelled / regression paths, features, training hygiene."""

import numpy as np
import pytest

from edgekit._tf import tensorflow, tf_keras
from edgekit.distill import distill
from edgekit.distill.features import auto_hint_pairs, head_kind, make_adapter, tap_model
from edgekit.errors import BadInputError, UnsupportedModelError

keras = tf_keras()
tf = tensorflow()
L = keras.layers
N_FEATURES, N_CLASSES = 12, 4


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def task():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(N_FEATURES, N_CLASSES))
    x = rng.normal(size=(1200, N_FEATURES)).astype(np.float32)
    y = np.argmax(np.tanh(x) @ w, axis=1)
    return x[:1000], y[:1000], x[1000:], y[1000:]


@pytest.fixture(scope="module")
def teacher(task):
    x, y, _, _ = task
    keras.utils.set_random_seed(0)
    model = keras.Sequential([L.Input((N_FEATURES,)), L.Dense(64, activation="relu", name="hidden"),
                              L.Dense(N_CLASSES, activation="softmax", name="head")], name="teacher")
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=15, batch_size=64, verbose=0)
    return model


def _student(seed=1, softmax_layer=True):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((N_FEATURES,))
    logits = L.Dense(N_CLASSES, name="logits")(L.Dense(8, activation="relu", name="s_hidden")(inputs))
    outputs = L.Softmax(name="probs")(logits) if softmax_layer else logits
    return keras.Model(inputs, outputs, name="student")


def test_softmax_heads_are_tapped_before_the_softmax(teacher, task):
    x = task[2][:16]
    hidden = keras.Model(teacher.inputs, teacher.get_layer("hidden").output)(x).numpy()
    kernel, bias = teacher.get_layer("head").get_weights()
    logits = hidden @ kernel + bias
    tapped = tap_model(teacher)(x)
    tapped = (tapped[0] if isinstance(tapped, list) else tapped).numpy()
    np.testing.assert_allclose(tapped, logits, rtol=1e-4, atol=1e-4)
    for temperature in (1.0, 4.0):
        np.testing.assert_allclose(_softmax(tapped / temperature), _softmax(logits / temperature), atol=1e-5)
    np.testing.assert_allclose(_softmax(tapped), teacher(x).numpy(), atol=1e-5)
    assert head_kind(teacher) == "softmax"

    inputs = keras.Input((3,))
    for head in (L.Softmax(), L.Activation("softmax")):
        model = keras.Model(inputs, head(L.Dense(2, name=f"pre_{head.name}")(inputs)))
        probe = np.ones((1, 3), np.float32)
        pre = keras.Model(inputs, model.get_layer(f"pre_{head.name}").output)(probe).numpy()
        np.testing.assert_allclose(np.asarray(tap_model(model)(probe)).reshape(1, 2), pre, rtol=1e-5)
    pre_op = L.Dense(2, name="pre_op")(inputs)
    op_model = keras.Model(inputs, tf.nn.softmax(pre_op))  # a TFOpLambda head
    assert head_kind(op_model) == "softmax"
    np.testing.assert_allclose(np.asarray(tap_model(op_model)(probe)).reshape(1, 2),
                               keras.Model(inputs, pre_op)(probe).numpy(), rtol=1e-5)


def test_kd_loss_uses_teacher_logits_and_the_students_pre_softmax(teacher, task):
    from edgekit.distill.trainer import Distiller

    x, y = task[2][:32], task[3][:32]
    student = _student()
    distiller = Distiller(tap_model(teacher), student, tap_model(student), task="classification",
                          temperature=3.0, alpha=0.4, labelled=True)
    one_hot = np.eye(N_CLASSES, dtype=np.float32)[y]
    terms = distiller._terms({"x": x, "y": one_hot}, training=False)
    hidden = keras.Model(teacher.inputs, teacher.get_layer("hidden").output)(x).numpy()
    t_logits = hidden @ teacher.get_layer("head").kernel.numpy() + teacher.get_layer("head").bias.numpy()
    s_logits = keras.Model(student.inputs, student.get_layer("logits").output)(x).numpy()
    p, q = _softmax(t_logits / 3.0), _softmax(s_logits / 3.0)
    kl = 9.0 * np.mean(np.sum(p * np.log(p / q), axis=-1))
    ce = np.mean(-np.log(_softmax(s_logits)[np.arange(32), y]))
    assert float(terms["kd_loss"]) == pytest.approx(kl, rel=1e-4)
    assert float(terms["ce_loss"]) == pytest.approx(ce, rel=1e-4)
    assert float(terms["loss"]) == pytest.approx(0.4 * ce + 0.6 * kl, rel=1e-4)
    agreement = np.mean(np.argmax(s_logits, 1) == np.argmax(t_logits, 1))
    assert float(terms["agreement"]) == pytest.approx(agreement)


def test_unlabelled_distillation_raises_agreement(teacher, task):
    x, _, x_val, y_val = task
    student = _student(softmax_layer=True)
    head_before = student.get_layer("logits").get_weights()[0].copy()
    result = distill(teacher, student, x, x_val=x_val, epochs=12, learning_rate=1e-2, verbose=0)
    assert result.task == "classification"
    assert "ce_loss" not in result.history and "accuracy" not in result.history
    np.testing.assert_allclose(result.history["loss"], result.history["kd_loss"])
    before, after = result.initial_val_metrics["agreement"], result.val_metrics["agreement"]
    assert after > before + 0.3 and after > 0.8, (before, after)
    assert not np.allclose(student.get_layer("logits").get_weights()[0], head_before)
    probs = student(x_val[:8]).numpy()  # still a softmax model, trained in place
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    student_acc = np.mean(np.argmax(student.predict(x_val, verbose=0), 1) == y_val)
    assert student_acc > 0.7


def test_labelled_distillation_reports_accuracy_and_restores_best(teacher, task):
    x, y, x_val, y_val = task
    student = _student(softmax_layer=False)
    result = distill(teacher, student, x[:400], y[:400], x_val, y_val, epochs=6, learning_rate=1e-2, alpha=0.5,
                     verbose=0)
    assert {"ce_loss", "accuracy", "val_accuracy", "val_agreement"} <= set(result.history)
    measured = np.mean(np.argmax(student.predict(x_val, verbose=0), 1) == y_val)
    assert result.val_metrics["accuracy"] == pytest.approx(measured, abs=1e-6)
    best = max(result.history["val_accuracy"])
    assert result.val_metrics["accuracy"] == pytest.approx(max(best, result.initial_val_metrics["accuracy"]))
    assert result.val_metrics["accuracy"] > result.initial_val_metrics["accuracy"] + 0.2


def test_no_improvement_stops_early_and_keeps_the_starting_weights(teacher, task, monkeypatch):
    from edgekit.distill import trainer

    x, y, _, _ = task
    student = _student()
    start = [w.copy() for w in student.get_weights()]
    # 180 training samples, batch 64: 3 steps per epoch, so 10 epochs stay below the minimum step count.
    result = distill(teacher, student, x[:200], y[:200], epochs=10, learning_rate=0.0, patience=2, verbose=0)
    assert result.epochs_run == 10 and result.best_epoch == 0
    monkeypatch.setattr(trainer, "MIN_STEPS_BEFORE_STOPPING", 6)
    result = distill(teacher, student, x[:200], y[:200], epochs=10, learning_rate=0.0, patience=2, verbose=0)
    assert result.epochs_run == 2 and result.best_epoch == 0
    assert any("held out 20 of 200" in n for n in result.notices)
    for a, b in zip(start, student.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_same_seed_same_student(teacher, task):
    x = task[0][:300]
    weights = []
    for _ in range(2):
        student = _student(seed=5)
        distill(teacher, student, x, epochs=2, learning_rate=1e-2, seed=7, verbose=0)
        weights.append(student.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_regression_teacher_distils_with_mse():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 6)).astype(np.float32)
    keras.utils.set_random_seed(2)
    teacher = keras.Sequential([L.Input((6,)), L.Dense(32, activation="tanh"), L.Dense(2)])
    teacher.compile("adam", "mse")
    teacher.fit(x, np.stack([np.sin(x[:, 0]), x[:, 1] * x[:, 2]], 1), epochs=5, verbose=0)
    student = keras.Sequential([L.Input((6,)), L.Dense(16, activation="tanh"), L.Dense(2)])
    result = distill(teacher, student, x, epochs=10, learning_rate=1e-2, verbose=0, task="regression")
    t_out = teacher.predict(x, verbose=0)
    mse = float(np.mean((student.predict(x, verbose=0) - t_out) ** 2))
    assert result.task == "regression" and "agreement" not in result.val_metrics
    assert result.val_metrics["kd_loss"] < 0.3 * result.initial_val_metrics["kd_loss"]
    assert mse < 0.3 * float(np.mean(t_out**2))


def test_autoencoder_teacher_is_detected_as_regression():
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(200, 8)).astype(np.float32)
    teacher = keras.Sequential([L.Input((8,)), L.Dense(3, activation="relu"), L.Dense(8, activation="sigmoid")])
    student = keras.Sequential([L.Input((8,)), L.Dense(2, activation="relu"), L.Dense(8, activation="sigmoid")])
    result = distill(teacher, student, x, epochs=2, verbose=0)
    assert result.task == "regression" and any("autoencoder" in n for n in result.notices)


def test_adapter_and_attention_shapes():
    adapter = make_adapter((None, 6, 6, 8), (None, 6, 6, 32), "a2d")
    assert isinstance(adapter, L.Conv2D) and adapter.kernel.shape == (1, 1, 8, 32)
    assert adapter(np.zeros((2, 6, 6, 8), np.float32)).shape == (2, 6, 6, 32)
    adapter = make_adapter((None, 10, 8), (None, 10, 32), "a1d")
    assert isinstance(adapter, L.Conv1D) and adapter(np.zeros((2, 10, 8), np.float32)).shape == (2, 10, 32)
    adapter = make_adapter((None, 8), (None, 32), "avec")
    assert isinstance(adapter, L.Dense) and adapter(np.zeros((2, 8), np.float32)).shape == (2, 32)


def _conv_net(widths, name):
    inputs = keras.Input((16, 16, 1))
    x = inputs
    for i, w in enumerate(widths):
        x = L.Conv2D(w, 3, padding="same", activation="relu", name=f"{name}_conv{i}")(x)
        x = L.MaxPooling2D(name=f"{name}_pool{i}")(x) if i < len(widths) - 1 else x
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(3, activation="softmax", name=f"{name}_head")(x), name=name)


def test_hints_matched_by_spatial_size_deepest_first():
    teacher = _conv_net([16, 16, 32, 32], "t")  # 16, 8, 4, 2
    student = _conv_net([4, 8, 8], "s")  # 16, 8, 4
    pairs = auto_hint_pairs(student, teacher)
    assert [(p.student_layer, p.teacher_layer) for p in pairs] == [
        ("s_conv2", "t_conv2"), ("s_conv1", "t_conv1"), ("s_conv0", "t_conv0")]
    assert pairs[0].student_shape == (None, 4, 4, 8) and pairs[0].teacher_shape == (None, 4, 4, 32)


def test_hint_and_attention_terms_train(task):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(160, 16, 16, 1)).astype(np.float32)
    keras.utils.set_random_seed(0)
    teacher, student = _conv_net([8, 16], "t"), _conv_net([4, 4], "s")
    result = distill(teacher, student, x, epochs=4, learning_rate=1e-2, hint_weight=1.0, attention_weight=1.0,
                     batch_size=32, verbose=0)
    assert result.hint_pairs == (("s_conv1", "t_conv1"), ("s_conv0", "t_conv0"))
    hist = result.history
    assert hist["hint_loss"][-1] < hist["hint_loss"][0] and hist["attention_loss"][-1] < hist["attention_loss"][0]
    named = distill(teacher, _conv_net([4, 4], "s"), x, epochs=1, attention_weight=1.0,
                    hint_pairs=[("s_conv0", "t_conv1")], verbose=0)  # 16x16 student map pooled to 8x8
    assert named.hint_pairs == (("s_conv0", "t_conv1"),) and named.history["attention_loss"][0] > 0


def test_bad_arguments_are_refused(teacher, task):
    x, y, _, _ = task
    with pytest.raises(BadInputError, match="is the teacher itself"):
        distill(teacher, teacher, x[:50], epochs=1)
    shared = keras.Model(teacher.inputs, teacher.outputs)
    with pytest.raises(BadInputError, match="shares weights"):
        distill(teacher, shared, x[:50], epochs=1)
    wrong_out = keras.Sequential([L.Input((N_FEATURES,)), L.Dense(3)])
    with pytest.raises(UnsupportedModelError, match=r"outputs \(None, 3\) but the teacher outputs \(None, 4\)"):
        distill(teacher, wrong_out, x[:50], epochs=1)
    with pytest.raises(BadInputError, match="y_val given without x_val"):
        distill(teacher, _student(), x[:50], y[:50], y_val=y[:5], epochs=1)
    with pytest.raises(BadInputError, match=r"class indices 0..3"):
        distill(teacher, _student(), x[:50], y[:50] + 4, epochs=1, verbose=0)
    with pytest.raises(BadInputError, match="x_train: x has shape"):
        distill(teacher, _student(), x[:50, :5], epochs=1)
    with pytest.raises(BadInputError, match="no student and teacher feature maps"):
        distill(teacher, _student(), x[:50], hint_weight=1.0, epochs=1)


def test_sigmoid_teacher_distils_as_binary(task):
    x, y, _, _ = task
    keras.utils.set_random_seed(0)
    labels = (y[:600] % 2).astype(np.float32)
    teacher = keras.Sequential([L.Input((N_FEATURES,)), L.Dense(32, activation="relu"),
                                L.Dense(1, activation="sigmoid")])
    teacher.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy")
    teacher.fit(x[:600], labels, epochs=5, verbose=0)
    student = keras.Sequential([L.Input((N_FEATURES,)), L.Dense(8, activation="relu"),
                                L.Dense(1, activation="sigmoid")])
    result = distill(teacher, student, x[:600], labels, epochs=6, learning_rate=1e-2, verbose=0)
    assert result.task == "binary" and "ce_loss" in result.history
    assert result.val_metrics["agreement"] > max(0.75, result.initial_val_metrics["agreement"] + 0.1)


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden, self.head = L.Dense(16, activation="relu"), L.Dense(N_CLASSES, activation="softmax")

    def call(self, inputs):
        return self.head(self.hidden(inputs))


def test_subclassed_softmax_teacher_uses_log_probabilities(teacher, task):
    from edgekit.distill.features import LogOfProbabilities
    from edgekit.distill.trainer import _tap

    x = task[0][:300]
    keras.utils.set_random_seed(0)
    sub = _Subclassed()
    sub(x[:1])
    tap = _tap(sub, [], "classification", "teacher", x[:8])
    assert isinstance(tap, LogOfProbabilities)
    np.testing.assert_allclose(_softmax(tap(x[:5]).numpy() / 3.0),
                               _softmax(np.log(sub(x[:5]).numpy()) / 3.0), atol=1e-6)
    result = distill(sub, _student(), x, epochs=3, learning_rate=1e-2, verbose=0)
    assert result.task == "classification"
    assert result.val_metrics["agreement"] > result.initial_val_metrics["agreement"]


def test_shrink_distill_shrink_again(teacher, task):
    """The prune -> distill -> prune loop: any student derived from the teacher goes back into distill."""
    from edgekit.distill.students import shrink_teacher

    x, _, x_val, _ = task
    half = shrink_teacher(teacher, 0.5)
    first = distill(teacher, half, x, x_val=x_val, epochs=3, learning_rate=1e-2, verbose=0)
    quarter = shrink_teacher(first.student, 0.5)
    assert quarter.get_layer("hidden").units == 16 and quarter.get_layer("head").units == N_CLASSES
    second = distill(teacher, quarter, x, x_val=x_val, epochs=3, learning_rate=1e-2, verbose=0)
    assert second.val_metrics["agreement"] >= second.initial_val_metrics["agreement"]
    assert second.val_metrics["agreement"] > 0.85
    # The Dense(softmax) head was trained through its logits and keeps its softmax afterwards.
    assert quarter.get_layer("head").activation.__name__ == "softmax"
    np.testing.assert_allclose(quarter(x_val[:4]).numpy().sum(axis=1), 1.0, rtol=1e-5)
