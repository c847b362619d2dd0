"""Where the images come from, checked before training: an ImageNet-style folder, a `datasets`
image dataset, or scikit-learn's bundled digits.

Each split is an `ImageSplit`: `len`, `label(i)`, `load(i)` -> uint8 tensor [3, H, W], and
`where(i)` (a path or row, for error messages). Everything that can be wrong with the data (a
missing folder, no class folders, an empty class, an unreadable image, mismatched classes) raises
`DataError` naming the path and what would be accepted, in `open_splits`, before any training step.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.datasets.folder import IMG_EXTENSIONS as IMAGE_EXTENSIONS  # what ImageFolder accepts

from ..config import SuiteDataError

FOLDER_LAYOUT = "a folder with train/ and val/ sub-folders, each holding one folder of images per class"


class DataError(SuiteDataError):
    """Image data that is missing or malformed; the message names the path and what is accepted."""


class ImageSplit:
    """One split of labelled images; subclasses implement `load`, `where` and the label array."""

    classes: list[str]
    labels: np.ndarray  # int64, one per image

    def __len__(self) -> int:
        return len(self.labels)

    def label(self, index: int) -> int:
        return int(self.labels[index])

    def load(self, index: int) -> torch.Tensor:
        raise NotImplementedError

    def where(self, index: int) -> str:
        raise NotImplementedError


class FolderSplit(ImageSplit):
    """A folder with one sub-folder of images per class, scanned by torchvision's ImageFolder."""

    def __init__(self, root: Path) -> None:
        from torchvision.datasets import ImageFolder

        if not root.is_dir():
            raise DataError(f"image folder not found: {root} (expected {FOLDER_LAYOUT})")
        class_dirs = [e for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")]
        if not class_dirs:
            raise DataError(
                f"no class folders in {root}: expected one sub-folder per class holding images "
                f"({', '.join(IMAGE_EXTENSIONS)})"
            )
        try:
            folder = ImageFolder(str(root), loader=lambda p: p, allow_empty=False)
        except FileNotFoundError as exc:  # e.g. a class folder without any image file
            raise DataError(f"malformed image folder {root}: {exc} (accepted extensions: "
                            f"{', '.join(IMAGE_EXTENSIONS)})") from exc
        self.root = root
        self.classes = list(folder.classes)
        self.paths = [p for p, _ in folder.samples]
        self.labels = np.asarray([t for _, t in folder.samples], dtype=np.int64)

    def where(self, index: int) -> str:
        return self.paths[index]

    def load(self, index: int) -> torch.Tensor:
        return decode_image_file(self.paths[index])


def decode_image_file(path: str) -> torch.Tensor:
    """An image file as a uint8 RGB tensor [3, H, W] (decoded by PIL, as ImageFolder's default
    loader does); DataError naming the file if it cannot be read."""
    from PIL import Image
    from torchvision.transforms.v2.functional import pil_to_tensor

    try:
        with Image.open(path) as img:
            return pil_to_tensor(img.convert("RGB"))
    except Exception as exc:
        raise DataError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from exc


class HFSplit(ImageSplit):
    """One split of a `datasets` image dataset: its first Image column and first ClassLabel column."""

    def __init__(self, data_path: str, split: str) -> None:
        import datasets

        try:
            if Path(data_path).is_dir() and _is_saved_dataset(Path(data_path)):
                loaded = datasets.load_from_disk(data_path)
                if isinstance(loaded, datasets.DatasetDict):
                    if split not in loaded:
                        raise DataError(f"dataset {data_path} has no split '{split}'; it has: {', '.join(loaded)}")
                    loaded = loaded[split]
            else:
                loaded = datasets.load_dataset(data_path, split=split)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"cannot load the image dataset '{data_path}' (split '{split}'): "
                            f"{type(exc).__name__}: {exc}") from exc
        features = loaded.features
        images = [k for k, f in features.items() if isinstance(f, datasets.Image)]
        labels = [k for k, f in features.items() if isinstance(f, datasets.ClassLabel)]
        if not images or not labels:
            raise DataError(
                f"dataset '{data_path}' (split '{split}') needs an Image column and a ClassLabel column; "
                f"its columns are: {', '.join(f'{k} ({type(f).__name__})' for k, f in features.items())}"
            )
        self.data_path, self.split = data_path, split
        self.dataset, self.image_column = loaded, images[0]
        self.classes = list(features[labels[0]].names)
        self.labels = np.asarray(loaded[labels[0]], dtype=np.int64)

    def where(self, index: int) -> str:
        return f"{self.data_path} split '{self.split}' row {index}"

    def load(self, index: int) -> torch.Tensor:
        from torchvision.transforms.v2.functional import pil_to_tensor

        try:
            image = self.dataset[index][self.image_column]
            return pil_to_tensor(image.convert("RGB"))
        except Exception as exc:
            raise DataError(f"cannot read image at {self.where(index)}: {type(exc).__name__}: {exc}") from exc


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file()


class TensorSplit(ImageSplit):
    """Images already in memory as a uint8 tensor [N, 3, H, W] (the digits)."""

    def __init__(self, images: torch.Tensor, labels: np.ndarray, classes: list[str], name: str) -> None:
        self.images, self.labels, self.classes, self.name = images, labels, classes, name

    def where(self, index: int) -> str:
        return f"{self.name} image {index}"

    def load(self, index: int) -> torch.Tensor:
        return self.images[index]


class SubsetSplit(ImageSplit):
    """The images of `base` at `indices` (smoke-sized runs: `train_limit`, `val_limit`)."""

    def __init__(self, base: ImageSplit, indices: np.ndarray) -> None:
        self.base, self.indices = base, np.asarray(indices, dtype=np.int64)
        self.classes = base.classes
        self.labels = base.labels[self.indices]

    def where(self, index: int) -> str:
        return self.base.where(int(self.indices[index]))

    def load(self, index: int) -> torch.Tensor:
        return self.base.load(int(self.indices[index]))


@functools.lru_cache(maxsize=4)  # built once per process; nothing ever writes to the images
def digits_splits(upsample: int, val_fraction: float, split_seed: int) -> tuple[TensorSplit, TensorSplit]:
    """scikit-learn's 1,797 digits as 3-channel uint8 images upsampled `upsample` times, split
    per class (stratified) into train and validation by a fixed shuffle."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = torch.from_numpy(digits.images).to(torch.float32).unsqueeze(1) * (255.0 / 16.0)
    size = 8 * int(upsample)
    pixels = torch.nn.functional.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False)
    images = pixels.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = np.asarray(digits.target, dtype=np.int64)
    rng = np.random.default_rng(split_seed)
    val_idx: list[int] = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        val_idx.extend(members[: int(round(val_fraction * len(members)))].tolist())
    is_val = np.zeros(len(labels), dtype=bool)
    is_val[val_idx] = True
    classes = [str(c) for c in digits.target_names]
    train = TensorSplit(images[~is_val], labels[~is_val], classes, "digits train")
    val = TensorSplit(images[is_val], labels[is_val], classes, "digits val")
    return train, val


def limit_split(split: ImageSplit, limit: int, seed: int) -> ImageSplit:
    """The first `limit` images of a fixed shuffle of `split` (0: all of it)."""
    if limit <= 0 or limit >= len(split):
        return split
    return SubsetSplit(split, np.sort(np.random.default_rng(seed).permutation(len(split))[:limit]))


def verify_images(split: ImageSplit, per_class: int) -> None:
    """Decode the first `per_class` images of every class (-1: every image); DataError on failure."""
    if per_class == 0:
        return
    seen: dict[int, int] = {}
    for i in range(len(split)):
        c = split.label(i)
        if per_class > 0 and seen.get(c, 0) >= per_class:
            continue
        seen[c] = seen.get(c, 0) + 1
        image = split.load(i)
        if image.ndim != 3 or image.shape[0] != 3 or min(image.shape[1:]) < 1:
            raise DataError(f"image {split.where(i)} decoded to shape {tuple(image.shape)}, expected [3, H, W]")


def open_splits(config: dict[str, Any]) -> tuple[ImageSplit, ImageSplit]:
    """The training and validation splits the config names, checked; DataError on bad data."""
    dataset = config["dataset"]
    if dataset == "digits":
        train, val = digits_splits(config["digits_upsample"], config["val_fraction"], config["split_seed"])
    else:
        data_path = str(config["data_path"] or "")
        if not data_path:
            raise DataError(
                f"dataset '{dataset}' needs a data_path: --set data_path=/path/to/imagenet ({FOLDER_LAYOUT})"
                if dataset == "folder" else
                "dataset 'hf' needs a data_path: --set data_path=<datasets name or save_to_disk folder>"
            )
        if dataset == "folder":
            root = Path(data_path).expanduser()
            if not root.is_dir():
                raise DataError(f"ImageNet folder not found: {root} (expected {FOLDER_LAYOUT})")
            train = FolderSplit(root / config["train_split"])
            val = FolderSplit(root / config["val_split"])
            if train.classes != val.classes:
                only_train = sorted(set(train.classes) - set(val.classes))[:5]
                only_val = sorted(set(val.classes) - set(train.classes))[:5]
                raise DataError(
                    f"the class folders of {train.root} and {val.root} differ (only in train: {only_train}; "
                    f"only in val: {only_val}): both splits need the same class folders"
                )
        else:
            train = HFSplit(data_path, config["train_split"])
            val = HFSplit(data_path, config["val_split"])
    train = limit_split(train, config["train_limit"], config["split_seed"])
    val = limit_split(val, config["val_limit"], config["split_seed"])
    for split in (train, val):
        verify_images(split, config["verify_images_per_class"])
    return train, val
