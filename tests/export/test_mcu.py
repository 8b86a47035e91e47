"""TFLite Micro export: op check naming the layer, stripped flatbuffer, exact arena, C sources that compile."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from edgekit.errors import UnsupportedModelError
from edgekit.export.mcu import RESOLVER_METHODS, arena_with_margin, build_mcu_sources, check_tflm_ops
from edgekit.export.strip import size_breakdown, strip_for_mcu
from edgekit.export.tflite import convert
from edgekit.ir.ops import TFLM_BUILTINS
from edgekit.model_io.flatbuffer import buffer_data_offsets, read_model, tflite_op_list
from edgekit.runners import litert, tflm


@pytest.fixture(scope="module")
def teacher_int8(mnist1d_teacher, mnist1d_2000):
    return convert(mnist1d_teacher, "int8", mnist1d_2000.x_train, int8_io=True).tflite_bytes


@pytest.fixture(scope="module")
def exported(teacher_int8, mnist1d_teacher, mnist1d_2000):
    return build_mcu_sources(teacher_int8, "teacher", keras_model=mnist1d_teacher, check_data=mnist1d_2000.x_val)


def test_stripping_drops_names_and_metadata_and_keeps_outputs_identical(teacher_int8, mnist1d_2000):
    result = strip_for_mcu(teacher_int8)
    stripped = read_model(result.tflite_bytes)
    assert all(t.name is None for t in stripped.subgraphs[0].tensors)
    assert not stripped.signatureDefs and not stripped.metadata and stripped.description is None
    before, after = result.before, result.after
    assert after.total_bytes < before.total_bytes and after.name_bytes == 0 and after.metadata_bytes == 0
    assert after.weight_bytes == before.weight_bytes  # not one weight byte touched
    assert before.total_bytes - after.total_bytes >= before.name_bytes  # names (and more) are gone
    x = mnist1d_2000.x_test
    np.testing.assert_array_equal(tflm.predict(result.tflite_bytes, x), tflm.predict(teacher_int8, x))
    np.testing.assert_array_equal(litert.predict(result.tflite_bytes, x), litert.predict(teacher_int8, x))
    assert all(offset % 16 == 0 for offset, _ in buffer_data_offsets(result.tflite_bytes))


def test_weight_bytes_are_what_the_parameters_need(teacher_int8, mnist1d_teacher):
    breakdown = size_breakdown(teacher_int8)
    # int8 kernels (1 byte per weight) and int32 biases (4 bytes each, one per output channel)
    kernels = sum(w.numpy().size for w in mnist1d_teacher.weights if "kernel" in w.name)
    biases = 3 * 64 + 10
    assert kernels + 4 * biases <= breakdown.weight_bytes <= kernels + 4 * biases + 64  # + shape constants
    assert breakdown.quantization_bytes >= 3 * 64 * (4 + 8)  # per-channel float32 scale + int64 zero point


def test_arena_from_the_recording_equals_the_bisected_arena(exported):
    assert exported.arena_bytes == exported.recorded_arena_bytes
    assert exported.arena_constant_bytes == arena_with_margin(exported.arena_bytes)
    assert exported.arena_constant_bytes % 16 == 0
    assert exported.arena_bytes * 1.1 <= exported.arena_constant_bytes <= exported.arena_bytes * 1.1 + 16 + 512


def test_op_resolver_registers_exactly_the_ops_used(exported):
    assert exported.ops == tuple(dict.fromkeys(tflite_op_list(exported.tflite_bytes)))
    header = exported.files["teacher_ops.h"]
    assert "MicroMutableOpResolver<kTeacherOpCount>" in header and f"kTeacherOpCount = {len(exported.ops)};" in header
    assert re.findall(r"resolver\.(Add\w+)\(\)", header) == [RESOLVER_METHODS[op] for op in exported.ops]
    assert set(RESOLVER_METHODS) == set(TFLM_BUILTINS)  # every op TFLM has, edgekit can register


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_c_array_compiles_with_gpp_and_holds_the_tflite_bytes(exported, tmp_path):
    for name, text in exported.files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "dump.cc").write_text(
        "#include <cstdint>\n#include <cstdio>\n#include \"teacher_data.h\"\n"
        "int main() {\n  std::fwrite(g_teacher_data, 1, g_teacher_data_len, stdout);\n"
        "  return (reinterpret_cast<std::uintptr_t>(g_teacher_data) % 16 == 0 && kTeacherTensorArenaSize > 0)"
        " ? 0 : 3;\n}\n")
    binary = tmp_path / "dump"
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-o", str(binary), str(tmp_path / "dump.cc"),
                    str(tmp_path / "teacher_data.cc")], check=True, capture_output=True)
    dumped = subprocess.run([str(binary)], capture_output=True, check=True).stdout  # exit 3 if not aligned
    assert dumped == exported.tflite_bytes
    stub = tmp_path / "tensorflow" / "lite" / "micro"
    stub.mkdir(parents=True)
    methods = "\n".join(f"  TfLiteStatus {m}() {{ return ++n <= N ? kTfLiteOk : kTfLiteError; }}"
                        for m in sorted(set(RESOLVER_METHODS.values())))
    (stub / "micro_mutable_op_resolver.h").write_text(
        "#pragma once\nenum TfLiteStatus { kTfLiteOk, kTfLiteError };\nnamespace tflite {\n"
        f"template <unsigned N> struct MicroMutableOpResolver {{\n  unsigned n = 0;\n{methods}\n}};\n}}\n")
    (tmp_path / "ops.cc").write_text('#include "teacher_ops.h"\nint main() { TeacherOpResolver r; '
                                     "return RegisterTeacherOps(r) == kTfLiteOk ? 0 : 1; }\n")
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-I", str(tmp_path), "-o", str(tmp_path / "ops"),
                    str(tmp_path / "ops.cc")], check=True, capture_output=True)
    subprocess.run([str(tmp_path / "ops")], check=True)  # the resolver size fits the registrations


def _gelu_model():
    from edgekit._tf import tf_keras

    keras = tf_keras()
    inputs = keras.Input((8,))
    x = keras.layers.Activation("gelu", name="smooth")(keras.layers.Dense(8, name="fc")(inputs))
    return keras.Model(inputs, keras.layers.Dense(4, name="head")(x))


def test_an_op_tflm_lacks_is_named_with_its_layer():
    model = _gelu_model()
    int8 = convert(model, "int8", np.random.default_rng(0).normal(size=(32, 8)).astype(np.float32)).tflite_bytes
    assert "GELU" in tflite_op_list(int8) and "GELU" not in TFLM_BUILTINS
    with pytest.raises(UnsupportedModelError, match="no kernel for op GELU from layer 'smooth'"):
        check_tflm_ops(int8, model)
    with pytest.raises(UnsupportedModelError, match="GELU"):
        build_mcu_sources(int8, "gelu", keras_model=model)


def test_exported_mcu_files_and_unsupported_op_via_the_api(mnist1d_teacher, mnist1d_2000, tmp_path):
    import edgekit.workflows.export as ek

    data = tmp_path / "val.npz"
    np.savez(data, x=mnist1d_2000.x_train, y=mnist1d_2000.y_train)
    result = ek.export(mnist1d_teacher, tmp_path / "kws.tflite", device="stm32h743", data=str(data))
    names = sorted(os.path.basename(p) for p in result.files)
    # stm32h743 lists RAM regions: the arena buffer and its linker section note come too (test_mcu_regions.py)
    assert names == ["kws.tflite", "kws_arena.cc", "kws_arena.h", "kws_data.cc", "kws_data.h", "kws_main.cc",
                     "kws_memory.md", "kws_ops.h"]
    assert (tmp_path / "kws.tflite").read_bytes() == result.mcu.tflite_bytes
    assert result.runtime == "tflm" and result.precision == "int8" and result.check.passed
    assert result.mcu.strip.after.total_bytes < result.mcu.strip.before.total_bytes
    bad = tmp_path / "bad"
    bad.mkdir()
    with pytest.raises(UnsupportedModelError, match="GELU from layer 'smooth'"):
        ek.export(_gelu_model(), bad / "gelu.tflite", device="stm32h743")
    assert list(bad.iterdir()) == []  # refused before any file was written
