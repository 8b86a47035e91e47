"""The config walk that refuses code before any loader runs (pure: hand-written configs, no TensorFlow)."""

from __future__ import annotations

import pytest

from edgekit.errors import UnsafeModelError
from edgekit.model_io.safety import find_unsafe_objects, refuse_unsafe

BUILTINS = frozenset({"Dense", "InputLayer", "Functional", "Sequential", "GlorotUniform", "Zeros", "relu"})
POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}


def _dense(name, **extra):
    config = {"name": name, "units": 2, "dtype": POLICY, "activation": "relu",
              "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                     "config": {"seed": None}, "registered_name": None}}
    config.update(extra)
    return {"module": "keras.layers", "class_name": "Dense", "config": config, "registered_name": None}


def _functional(*layers, name="model"):
    return {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
            "config": {"name": name, "trainable": True, "layers": list(layers)}}


def test_built_in_layers_initializers_and_policies_pass():
    assert find_unsafe_objects([_functional(_dense("a"), _dense("b"))], BUILTINS) == []


def test_lambda_inside_a_nested_sequential_is_reported_with_its_own_name():
    lam = {"class_name": "Lambda", "config": {"name": "inner_lambda", "function": ["...", None, None],
                                              "function_type": "lambda"}}
    inner = {"class_name": "Sequential", "config": {"name": "block", "layers": [lam]}}
    found = find_unsafe_objects([_functional(_dense("a"), inner)], BUILTINS)
    assert [(f.layer_name, f.class_name) for f in found] == [("inner_lambda", "Lambda")]
    with pytest.raises(UnsafeModelError) as info:
        refuse_unsafe("m.h5", [_functional(inner)], BUILTINS)
    assert str(info.value) == (
        "m.h5: layer 'inner_lambda' is a Lambda layer: loading it would run Python code stored in the file; "
        "re-run with --trust-model if you trust its source (API: trust=True)")


def test_initializer_from_a_foreign_module_is_refused_with_the_layer_using_it():
    evil = {"module": "os", "class_name": "system", "config": {}, "registered_name": None}
    found = find_unsafe_objects([_functional(_dense("head", kernel_initializer=evil))], BUILTINS)
    assert len(found) == 1
    assert found[0].layer_name == "head" and found[0].module == "os" and found[0].is_custom_class
    assert "uses the custom class 'system' from module 'os'" in found[0].reason


def test_unknown_class_without_module_is_custom():
    found = find_unsafe_objects([{"class_name": "MyBlock", "config": {"name": "blk", "trainable": True}}],
                                BUILTINS)
    assert [(f.layer_name, f.class_name, f.is_custom_class) for f in found] == [("blk", "MyBlock", True)]


def test_registered_name_outside_keras_is_custom_even_with_a_keras_class_name():
    layer = _dense("d")
    layer["registered_name"] = "mypkg>Dense"
    layer["module"] = None
    found = find_unsafe_objects([layer], BUILTINS)
    assert "'mypkg>Dense'" in found[0].reason


def test_keras3_custom_function_is_refused_but_builtin_function_names_pass():
    custom = {"module": "builtins", "class_name": "function", "config": "my_act", "registered_name": "function"}
    builtin = {"module": "builtins", "class_name": "function", "config": "relu", "registered_name": "function"}
    assert find_unsafe_objects([_dense("a", activation=builtin)], BUILTINS) == []
    found = find_unsafe_objects([_dense("b", activation=custom)], BUILTINS)
    assert [(f.layer_name, f.class_name) for f in found] == [("b", "my_act")]


def test_keras3_serialised_python_lambda_is_refused():
    fn = {"class_name": "__lambda__", "config": {"code": "...", "defaults": None, "closure": None}}
    found = find_unsafe_objects([_dense("a", activation=fn)], BUILTINS)
    assert found[0].layer_name == "a" and "Python lambda" in found[0].reason


@pytest.mark.parametrize("function, allowed", [
    ("__operators__.add", True), ("math.reduce_mean", True), ("nn.relu", True), ("reshape", True),
    ("io.write_file", False), ("print", False), ("compat.v1.py_func", False), ("raw_ops.WriteFile", False),
])
def test_tf_op_lambda_allows_numeric_ops_only(function, allowed):
    layer = {"class_name": "TFOpLambda", "config": {"name": "op", "trainable": True, "function": function}}
    found = find_unsafe_objects([layer], BUILTINS)
    assert (found == []) is allowed


def test_compile_config_is_not_walked():
    config = _functional(_dense("a"))
    config["compile_config"] = {"loss": {"module": "mypkg.losses", "class_name": "MyLoss", "config": {}}}
    assert find_unsafe_objects([config], BUILTINS) == []


def test_serialisation_markers_are_values_not_classes():
    layer = {"class_name": "InputLayer",
             "config": {"name": "in", "batch_input_shape": {"class_name": "__tuple__", "items": [None, 3]}}}
    assert find_unsafe_objects([layer], BUILTINS) == []


def test_tensorflow_initializer_is_accepted_only_under_a_name_keras_resolves():
    # keras.applications' EfficientNetV2 stores tf.constant_initializer as TF's own class
    tf_constant = {"class_name": "Constant", "config": {"value": 0.0}, "module": "tensorflow.python.ops.init_ops_v2"}
    builtins = BUILTINS | {"Constant"}
    assert find_unsafe_objects([_functional(_dense("predictions", bias_initializer=tf_constant))], builtins) == []
    # the same module with a class Keras does not know, or the name under another module, stays refused
    odd = {**tf_constant, "class_name": "Exfiltrate"}
    elsewhere = {**tf_constant, "module": "tensorflow.python.ops.gen_io_ops"}
    for initializer in (odd, elsewhere):
        found = find_unsafe_objects([_functional(_dense("predictions", bias_initializer=initializer))], builtins)
        assert [(f.layer_name, f.is_custom_class) for f in found] == [("predictions", True)]
