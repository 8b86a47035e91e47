"""Image folders: one sub-folder per class (labels are the sorted folder names), or images directly."""

from __future__ import annotations

import os
import warnings

import numpy as np

from edgekit.data.arrays import _brief, _fmt
from edgekit.errors import BadInputError
from edgekit.model_io.limits import MAX_IMAGE_PIXELS, require_regular_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def list_image_files(path: str, suffixes: tuple[str, ...] = IMAGE_SUFFIXES
                     ) -> tuple[list[tuple[str, int]], tuple[str, ...]]:
    """([(file, class index or -1), ...] in sorted order, class folder names) of an image folder."""
    class_dirs = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    if class_dirs:
        files = [(os.path.join(path, d, f), i) for i, d in enumerate(class_dirs)
                 for f in sorted(os.listdir(os.path.join(path, d))) if f.lower().endswith(suffixes)]
    else:
        files = [(os.path.join(path, f), -1) for f in sorted(os.listdir(path)) if f.lower().endswith(suffixes)]
    if not files:
        raise BadInputError(f"{path}: no images found ({', '.join(suffixes[:3])}, ...); put them in one "
                            "sub-folder per class")
    return files, tuple(class_dirs)


def _read_image_folder(path: str, model_input_shape) -> tuple[np.ndarray, np.ndarray | None, tuple | None]:
    from PIL import Image, UnidentifiedImageError

    height = width = channels = None
    if model_input_shape is not None:
        shape = tuple(model_input_shape)
        if len(shape) != 4 or shape[-1] not in (1, 3):
            raise BadInputError(f"{path}: an image folder needs a model with an image input (None, H, W, 1 or 3);"
                                f" this model expects {_fmt(shape)}; save the data as .npz instead")
        height, width, channels = shape[1], shape[2], shape[3]
    files, class_dirs = list_image_files(path)
    images = []
    for file, _ in files:
        require_regular_file(file, "image file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img_file = Image.open(file)
            with img_file as img:
                if img.size[0] * img.size[1] > MAX_IMAGE_PIXELS:
                    raise BadInputError(f"{file}: image is {img.size[0]}x{img.size[1]} pixels, over the limit of "
                                        f"{MAX_IMAGE_PIXELS:,}; resize the images to about the model's input size")
                if channels is None:  # no model given: the first image sets mode and size
                    channels = 1 if img.mode in ("1", "L", "I", "I;16", "F") else 3
                    width, height = img.size
                img = img.convert("L" if channels == 1 else "RGB")
                if img.size != (width, height):
                    if model_input_shape is None:
                        raise BadInputError(f"{file}: image is {img.size[0]}x{img.size[1]} but the first "
                                            f"image is {width}x{height}; pass the model so images are resized")
                    img = img.resize((width, height), Image.BILINEAR)
                array = np.asarray(img, dtype=np.float32) / 255.0
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise BadInputError(f"{file}: image is too large to decode safely ({_brief(e)}); resize the images") from e
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
            raise BadInputError(f"{file}: not a readable image ({_brief(e)})") from e
        images.append(array.reshape(height, width, channels))
    x = np.stack(images)
    if not class_dirs:
        return x, None, None
    return x, np.array([label for _, label in files], dtype=np.int64), tuple(class_dirs)

