"""`edgekit inspect --device <tflm> --measure-arena`: the measured arena with and without each optimisation."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import main


@pytest.fixture(scope="module")
def residual_h5(tmp_path_factory):
    from edgekit._tf import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    L = keras.layers
    x = inputs = keras.Input((12, 12, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="stem")(x)
    y = L.Conv2D(8, 3, padding="same", activation="relu", name="conv_a")(x)
    y = L.Conv2D(8, 3, padding="same", name="conv_b")(y)
    x = L.Add(name="add")([x, y])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, L.Dense(3, name="fc")(x))
    path = tmp_path_factory.mktemp("arena") / "residual.h5"
    model.save(path)
    return str(path)


@pytest.mark.slow
def test_measured_arena_steps_in_json_and_text(residual_h5, capsys):
    result = CliRunner().invoke(main, ["inspect", residual_h5, "--device", "stm32h743", "--measure-arena", "--json"])
    assert result.exit_code == 0, result.output
    steps = json.loads(result.output)["tflm_arena_measured"]
    assert [s["name"] for s in steps] == ["tflm", "order", "offline plan", "overlap"]
    assert all(s["outputs_identical"] for s in steps)
    arenas = [s["arena_bytes"] for s in steps]
    assert arenas[-1] < arenas[0]  # the residual block's convs overlap their dying inputs
    assert all(np.diff([s["head_bytes"] for s in steps]) <= 0)
    from edgekit.cli.inspect import _print_arena_steps
    from edgekit.export.memory_plan import ArenaStep

    _print_arena_steps([ArenaStep(**s) for s in steps])
    text = capsys.readouterr().out
    assert "TFLite Micro arena, measured" in text and f"{arenas[-1]:,} B" in text
    assert f"{(arenas[-1] - arenas[0]) / arenas[0]:+.1%}" in text


def test_no_measurement_without_the_flag_or_on_a_litert_device(residual_h5):
    for args in (["--device", "stm32h743"], ["--device", "pixel7", "--measure-arena"]):
        result = CliRunner().invoke(main, ["inspect", residual_h5, *args, "--json"])
        assert result.exit_code == 0, result.output
        assert "tflm_arena_measured" not in json.loads(result.output)
