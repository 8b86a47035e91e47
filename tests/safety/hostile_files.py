"""Small hostile files, written by the tests themselves: each asks for far more than it is."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np


def tiny_h5(path, keras) -> str:
    """A real 2-layer tf_keras .h5 (a few hundred bytes of weights)."""
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.Flatten(name="flat")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    keras.Model(inputs, outputs).save(path)
    return os.fspath(path)


def rewrite_h5_config(path, edit) -> str:
    """Apply `edit(config) -> config or JSON text` to the model_config of an .h5, in place (a test's own copy)."""
    import h5py

    with h5py.File(path, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        edited = edit(config)
        h5.attrs["model_config"] = edited if isinstance(edited, str) else json.dumps(edited)
    return os.fspath(path)


def huge_filters(config: dict) -> dict:
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "Conv2D":
            layer["config"]["filters"] = 2 ** 22
    return config


def huge_input(config: dict) -> dict:
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "InputLayer":
            layer["config"]["batch_input_shape"] = [None, 2 ** 20, 2 ** 20, 3]
    return config


def deep_nesting(config: dict, depth: int = 5000) -> str:
    """The config as JSON text with a list nested `depth` deep in a layer (json.dumps would recurse)."""
    config["config"]["layers"][1]["config"]["extra"] = "@@"
    return json.dumps(config).replace('"@@"', "[" * depth + "]" * depth)


def keras_zip_bomb(path, inflated_bytes: int = 2 << 30) -> str:
    """A .keras whose config.json inflates to `inflated_bytes` of spaces (a few MB on disk)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        with archive.open("config.json", "w", force_zip64=True) as f:
            chunk = b" " * (1 << 20)
            for _ in range(inflated_bytes // len(chunk)):
                f.write(chunk)
    return os.fspath(path)


def npz_bomb(path, rows: int = 3 << 27) -> str:
    """An .npz whose x.npy inflates to rows * 8 bytes of zeros, written without allocating it."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (rows,)})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive, \
            archive.open("x.npy", "w", force_zip64=True) as f:
        f.write(header.getvalue())
        chunk = bytes(1 << 20)
        for _ in range(rows * 8 // len(chunk)):
            f.write(chunk)
    return os.fspath(path)


def npy_lying_header(path, rows: int = 10 ** 12) -> str:
    """A 1 KB .npy whose header claims `rows` x 40 float32 rows."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (rows, 40)})
        f.write(bytes(1024))
    return os.fspath(path)


def png_bomb(path, side: int = 20000) -> str:
    """A 20000 x 20000 black PNG, a few hundred KB on disk (Pillow writes it from a 1-bit image)."""
    from PIL import Image

    Image.new("1", (side, side)).save(path, optimize=True)
    return os.fspath(path)


def yaml_alias_bomb(levels: int = 9) -> str:
    """The 'billion laughs' in YAML: each level repeats the previous one nine times."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    lines.append(f"name: *a{levels}")
    return "\n".join(lines) + "\n"
