"""MCU export on a profile with RAM regions: arena parts placed by measured size, C that compiles, exit 3 when
no region holds a part."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from edgekit.costmodel.placement import WHOLE_ARENA
from edgekit.export.mcu import arena_with_margin, build_mcu_sources
from edgekit.export.tflite import convert
from edgekit.profiles import load_profile
from edgekit.ram_regions import NON_PERSISTENT, PERSISTENT
from edgekit.runners import tflm


@pytest.fixture(scope="module")
def small_conv(tmp_path_factory):
    """(int8 bytes, saved .h5 folder, samples) of a small 2-D conv net whose activations outweigh its tail."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    L = keras.layers
    inputs = keras.Input((24, 24, 2))
    x = L.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    model = keras.Model(inputs, L.Dense(4)(L.GlobalAveragePooling2D()(x)))
    x = np.random.default_rng(0).normal(size=(40, 24, 24, 2)).astype(np.float32)
    folder = tmp_path_factory.mktemp("regions")
    model.save(folder / "net.h5")
    np.savez(folder / "data.npz", x=x, y=np.arange(40) % 4)
    return convert(model, "int8", x, int8_io=True).tflite_bytes, folder, x


def _profile(folder, regions, name="board"):
    data = yaml.safe_load(load_profile("stm32h743").path.read_text())
    data["name"], data["ram_regions"] = name, {"regions": regions, "source": "test board"}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_profile(path)


@pytest.mark.slow
def test_a_tiny_fast_region_gets_the_persistent_part_and_the_c_places_both(small_conv, tmp_path):
    model_bytes, _, x = small_conv
    measured = tflm.measure_arena(model_bytes)
    tail = measured.recorded_tail_bytes
    assert measured.arena_bytes - tail > 2 * tail  # activations dominate: the premise of the test
    # the fast region holds the persistent part (with margin) but not the activations
    fast_kib = -(-(arena_with_margin(tail) + 64) // 1024)
    profile = _profile(tmp_path, [
        {"name": "dtcm", "size_bytes": f"{fast_kib}KB", "bandwidth_mb_s": 3840, "section": ".dtcm_bss"},
        {"name": "axi_sram", "size_bytes": "512KB", "bandwidth_mb_s": 1920, "section": ".axisram_bss"}])
    mcu = build_mcu_sources(model_bytes, "net", check_data=x, ram_regions=profile.ram_regions,
                            profile_name=profile.name)
    parts = {p.part: p for p in mcu.placement.parts}
    assert set(parts) == {NON_PERSISTENT, PERSISTENT}
    assert (parts[NON_PERSISTENT].region, parts[PERSISTENT].region) == ("axi_sram", "dtcm")
    assert parts[NON_PERSISTENT].size_bytes >= mcu.arena_bytes - tail > fast_kib * 1024  # too big for dtcm
    assert tail <= parts[PERSISTENT].size_bytes <= fast_kib * 1024
    assert all(u.fits for u in mcu.placement.regions)
    main = mcu.files["main.cc"]
    assert ("MicroAllocator::Create(\n      g_net_persistent_arena, kNetPersistentArenaSize, "
            "g_net_non_persistent_arena, kNetNonPersistentArenaSize)") in main
    readme = mcu.files["net_memory.md"]
    assert ".dtcm_bss (NOLOAD)" in readme and ".axisram_bss (NOLOAD)" in readme and "not measured" in readme
    sections = _compiled_sections(mcu.files, "net", tmp_path)
    if sections is not None:  # the attributes are valid C++ and each buffer lands in its section, at its size
        assert sections[".dtcm_bss"] == parts[PERSISTENT].size_bytes
        assert sections[".axisram_bss"] == parts[NON_PERSISTENT].size_bytes
        _compile_main_against_tflm_signatures(tmp_path)


@pytest.mark.slow
def test_a_region_holding_the_whole_arena_gets_one_buffer_of_the_measured_size(small_conv, tmp_path):
    model_bytes, _, x = small_conv
    profile = load_profile("stm32h743")  # DTCM budget 64 KB holds this arena
    mcu = build_mcu_sources(model_bytes, "net", check_data=x, ram_regions=profile.ram_regions,
                            profile_name=profile.name)
    (part,) = mcu.placement.parts
    assert (part.part, part.region, part.section) == (WHOLE_ARENA, "dtcm", ".dtcm_bss")
    assert part.size_bytes == mcu.arena_constant_bytes >= mcu.arena_bytes
    assert "interpreter(model, resolver, g_net_tensor_arena, kNetTensorArenaSize)" in mcu.files["main.cc"]
    sections = _compiled_sections(mcu.files, "net", tmp_path)
    if sections is not None:
        assert sections[".dtcm_bss"] == mcu.arena_constant_bytes
        _compile_main_against_tflm_signatures(tmp_path)


@pytest.mark.slow
def test_export_exits_3_naming_the_region_when_no_region_holds_the_arena(small_conv, tmp_path):
    from edgekit.cli.main import main

    model_bytes, folder, _ = small_conv
    activations = tflm.measure_arena(model_bytes).recorded_head_bytes
    small_kib = activations // 2048  # half the activations, in KiB
    _profile(tmp_path, [{"name": "sram_a", "size_bytes": f"{small_kib}KB", "bandwidth_mb_s": 900},
                        {"name": "sram_b", "size_bytes": f"{small_kib}KB", "bandwidth_mb_s": 400}])
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(main, ["export", str(folder / "net.h5"), "--device", str(tmp_path / "board.yaml"),
                                       "--out", str(out / "net.tflite"), "--data", str(folder / "data.npz"),
                                       "--min-agreement", "0"])
    assert result.exit_code == 3, result.output
    assert "region 'sram_a'" in result.output and "B over" in result.output and "non-persistent" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert list(out.iterdir()) == []  # refused before anything was written
    ok = CliRunner().invoke(main, ["export", str(folder / "net.h5"), "--device", "stm32h743", "--out",
                                   str(out / "net.tflite"), "--data", str(folder / "data.npz"), "--min-agreement",
                                   "0", "--json"])
    assert ok.exit_code == 0, ok.output
    placement = json.loads(ok.output)["mcu"]["placement"]
    assert placement["parts"][0]["region"] == "dtcm" and all(r["fits"] for r in placement["regions"])
    assert {p.name for p in out.iterdir()} >= {"net_arena.h", "net_arena.cc", "net_memory.md", "net_main.cc"}


def _compiled_sections(files: dict[str, str], name: str, folder) -> dict[str, int] | None:
    """Compile {name}_arena.cc with the host g++ and read its ELF section sizes (None without g++ / readelf)."""
    if shutil.which("g++") is None or shutil.which("readelf") is None:
        return None
    for file_name, text in files.items():
        (folder / file_name).write_text(text)
    obj = folder / f"{name}_arena.o"
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-c", "-o", str(obj),
                    str(folder / f"{name}_arena.cc")], check=True, capture_output=True, text=True)
    listing = subprocess.run(["readelf", "-S", "-W", str(obj)], check=True, capture_output=True, text=True).stdout
    sizes = {}
    for line in listing.splitlines():
        fields = line.replace("[ ", "[").split()
        if len(fields) > 6 and fields[1].startswith("."):
            sizes[fields[1]] = int(fields[5], 16)
    return sizes


def test_inspect_checks_the_predicted_arena_per_region(small_conv, tmp_path):
    from edgekit.cli.main import main

    _, folder, _ = small_conv
    runner = CliRunner()
    fits = runner.invoke(main, ["inspect", str(folder / "net.h5"), "--device", "stm32h743", "--json"])
    assert fits.exit_code == 0, fits.output
    regions = json.loads(fits.output)["ram_regions"]
    assert regions["fits"] and regions["placement"]["parts"][0]["region"] == "dtcm"
    _profile(tmp_path, [{"name": "sram_a", "size_bytes": "4KB", "bandwidth_mb_s": 900}])
    over = runner.invoke(main, ["inspect", str(folder / "net.h5"), "--device", str(tmp_path / "board.yaml")])
    assert over.exit_code == 3 and "Traceback" not in over.output
    assert "over the RAM region budget" in over.output and "region 'sram_a', 4,096 B" in over.output


# The TFLM declarations main.cc uses, as tflite-micro's headers declare them (micro_allocator.h: the two-arena
# MicroAllocator::Create; micro_interpreter.h: the constructor taking an allocator). No TFLM sources on this host:
# this checks main.cc against those signatures, not a TFLM build.
_ALLOCATOR_H = """#pragma once
#include <cstddef>
#include <cstdint>
namespace tflite {
class MicroAllocator {
 public:
  static MicroAllocator* Create(uint8_t* persistent, size_t persistent_size, uint8_t* non_persistent,
                                size_t non_persistent_size);
};
}  // namespace tflite
"""
_INTERPRETER_H = """#pragma once
#include <cstddef>
#include <cstdint>
#include "tensorflow/lite/micro/micro_allocator.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#define TFLITE_SCHEMA_VERSION (3)
struct TfLiteTensor { union { void* raw; int8_t* int8; } data; size_t bytes; };
namespace tflite {
struct Model { int version() const; };
const Model* GetModel(const void* data);
class MicroInterpreter {
 public:
  MicroInterpreter(const Model* model, const MicroOpResolver& resolver, uint8_t* arena, size_t arena_size);
  MicroInterpreter(const Model* model, const MicroOpResolver& resolver, MicroAllocator* allocator);
  TfLiteStatus AllocateTensors();
  TfLiteStatus Invoke();
  TfLiteTensor* input(size_t index);
  TfLiteTensor* output(size_t index);
  size_t arena_used_bytes() const;
};
}  // namespace tflite
"""


def _compile_main_against_tflm_signatures(folder) -> None:
    from edgekit.export.mcu import RESOLVER_METHODS

    methods = "\n".join(f"  TfLiteStatus {m}() {{ return kTfLiteOk; }}" for m in sorted(set(RESOLVER_METHODS.values())))
    resolver = ("#pragma once\nenum TfLiteStatus { kTfLiteOk, kTfLiteError };\nnamespace tflite {\n"
                "class MicroOpResolver {};\ntemplate <unsigned N> struct MicroMutableOpResolver : MicroOpResolver {\n"
                f"{methods}\n}};\n}}\n")
    micro = folder / "tensorflow" / "lite" / "micro"
    micro.mkdir(parents=True, exist_ok=True)
    for name, text in (("micro_allocator.h", _ALLOCATOR_H), ("micro_interpreter.h", _INTERPRETER_H),
                       ("micro_log.h", "#pragma once\nvoid MicroPrintf(const char* format, ...);\n"),
                       ("micro_mutable_op_resolver.h", resolver)):
        (micro / name).write_text(text)
    (folder / "tensorflow" / "lite" / "schema").mkdir(exist_ok=True)
    (folder / "tensorflow" / "lite" / "schema" / "schema_generated.h").write_text("#pragma once\n")
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-fsyntax-only", "-I", str(folder),
                    str(folder / "main.cc")], check=True, capture_output=True, text=True)
