"""resnet50_imagenet data: the ImageNet folder loader on a tiny folder, its failure cases, a
`datasets` image dataset, the digits split, the transforms and the config checks."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from nightbench.suites.engine import RunRequest, SuiteInputError, execute_run
from nightbench.suites.resnet50_imagenet import SUITE
from nightbench.suites.resnet50_imagenet.config import SuiteConfigError, check_config
from nightbench.suites.resnet50_imagenet.data import DataError, digits_splits, open_splits
from nightbench.suites.resnet50_imagenet.transforms import (
    IMAGENET_MEAN,
    EvalTransform,
    TrainTransform,
    sample_crop_box,
)

from .helpers import TINY_CLASSES, TINY_FOLDER_CONFIG, build, write_image_folder


def folder_config(root, **extra):
    return {**TINY_FOLDER_CONFIG, "dataset": "folder", "data_path": str(root), **extra}


# --- the folder loader -------------------------------------------------------------------------

def test_folder_task_loads_labelled_images(tmp_path):
    root = write_image_folder(tmp_path / "imagenet")
    task = build("ci", **folder_config(root))
    assert task.steps_per_epoch == 12 // 4  # 3 classes x 4 training images, batch 4
    assert task.total_steps == 2 * 3 and task.global_batch_size == 4 and task.micro_batch_size == 2
    assert task.model.get_classifier().out_features == len(TINY_CLASSES)
    for images, labels in task.train_batches(0):
        assert images.shape == (4, 3, 8, 8) and images.dtype == torch.float32
        # class i was painted in channel i: the brightest channel of every crop is its label
        assert torch.equal(images.mean(dim=(2, 3)).argmax(dim=1), labels)
    metrics = task.evaluate(task.model.eval())
    assert set(metrics) >= {"top1", "top5", "loss"}
    assert 0.0 <= metrics["top1"] <= metrics["top5"] <= 1.0 and math.isfinite(metrics["loss"])


def test_missing_data_path_names_the_fix():
    with pytest.raises(DataError, match="data_path"):
        build("paper", **{**TINY_FOLDER_CONFIG, "data_path": ""})


def test_missing_folder_names_the_path(tmp_path):
    missing = tmp_path / "no_such_imagenet"
    with pytest.raises(DataError, match=str(missing)):
        build("ci", **folder_config(missing))


def test_missing_val_split_names_the_path(tmp_path):
    root = write_image_folder(tmp_path / "imagenet", {"train": 2})
    with pytest.raises(DataError, match=str(root / "val")):
        build("ci", **folder_config(root))


def test_split_without_class_folders_names_the_path(tmp_path):
    root = write_image_folder(tmp_path / "imagenet", {"train": 2})
    (root / "val").mkdir()
    (root / "val" / "loose_image.png").write_bytes((root / "train" / TINY_CLASSES[0] / "img0.png").read_bytes())
    with pytest.raises(DataError, match=f"no class folders in {root / 'val'}"):
        build("ci", **folder_config(root))


def test_class_folder_without_images_is_refused(tmp_path):
    root = write_image_folder(tmp_path / "imagenet")
    empty = root / "train" / "n04_empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("not an image")
    with pytest.raises(DataError, match="n04_empty"):
        build("ci", **folder_config(root))


def test_unreadable_image_names_the_file(tmp_path):
    root = write_image_folder(tmp_path / "imagenet")
    broken = root / "train" / TINY_CLASSES[1] / "img9.png"
    broken.write_bytes(b"this is not a PNG file")
    with pytest.raises(DataError, match=f"cannot read image {broken}"):
        build("ci", **folder_config(root))


def test_unverified_unreadable_image_still_names_the_file_when_loaded(tmp_path):
    root = write_image_folder(tmp_path / "imagenet")
    broken = root / "val" / TINY_CLASSES[2] / "img9.png"
    broken.write_bytes(b"\x89PNG but truncated")
    config = check_config({**SUITE.presets["ci"], **folder_config(root, verify_images_per_class=0)})
    train, val = open_splits(config)  # nothing decoded up front
    with pytest.raises(DataError, match=str(broken)):
        val.load(val.paths.index(str(broken)))


def test_splits_with_different_classes_are_refused(tmp_path):
    root = write_image_folder(tmp_path / "imagenet")
    (root / "val" / TINY_CLASSES[0]).rename(root / "val" / "n09_other")
    with pytest.raises(DataError, match="n09_other"):
        build("ci", **folder_config(root))


def test_engine_rejects_a_missing_folder_before_training(tmp_path):
    missing = tmp_path / "absent"
    request = RunRequest(suite="resnet50_imagenet", optimizer="sgd", preset="ci", results_root=str(tmp_path / "r"),
                         overrides={"dataset": "folder", "data_path": str(missing)}, progress=False)
    with pytest.raises(SuiteInputError, match=str(missing)):
        execute_run(request)
    assert not any((tmp_path / "r").rglob("summary.json"))


# --- a `datasets` image dataset ----------------------------------------------------------------

def test_hf_image_dataset_saved_to_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    def split(n):
        images = [Image.new("RGB", (9 + i, 11), color=(200 * (i % 2), 30, 200 * (1 - i % 2))) for i in range(n)]
        features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["even", "odd"])})
        return datasets.Dataset.from_dict({"img": images, "label": [i % 2 for i in range(n)]}, features=features)

    path = tmp_path / "hf_images"
    datasets.DatasetDict({"train": split(8), "validation": split(4)}).save_to_disk(str(path))
    task = build("ci", **{**TINY_FOLDER_CONFIG, "dataset": "hf", "data_path": str(path), "val_split": "validation"})
    assert task.steps_per_epoch == 2 and task.model.get_classifier().out_features == 2
    images, labels = next(task.train_batches(0))
    # odd rows are red, even rows blue: channel 0 vs channel 2 tells the label
    assert torch.equal((images[:, 0].mean(dim=(1, 2)) > images[:, 2].mean(dim=(1, 2))).long(), labels)
    with pytest.raises(DataError, match="no split 'val'"):
        build("ci", **{**TINY_FOLDER_CONFIG, "dataset": "hf", "data_path": str(path), "val_split": "val"})


# --- digits ------------------------------------------------------------------------------------

def test_digits_split_is_stratified_fixed_and_complete():
    train, val = digits_splits(upsample=2, val_fraction=0.2, split_seed=0)
    assert len(train) + len(val) == 1797 and train.images.shape[1:] == (3, 16, 16)
    per_class = Counter(np.concatenate([train.labels, val.labels]).tolist())
    val_counts = Counter(val.labels.tolist())
    assert all(val_counts[c] == round(0.2 * n) for c, n in per_class.items())
    again_train, _ = digits_splits(upsample=2, val_fraction=0.2, split_seed=0)
    assert torch.equal(train.images, again_train.images)
    other_train, _ = digits_splits(upsample=2, val_fraction=0.2, split_seed=1)
    assert not torch.equal(train.images, other_train.images)
    assert torch.equal(train.images[:, 0], train.images[:, 2])  # grey digits, three equal channels


# --- transforms --------------------------------------------------------------------------------

@pytest.mark.parametrize("height, width", [(32, 32), (20, 50), (1, 40), (375, 500)])
def test_crop_boxes_lie_inside_the_image(height, width):
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left, h, w = sample_crop_box(height, width, rng, (0.35, 1.0), (3 / 4, 4 / 3))
        assert 0 <= top and 0 <= left and 1 <= h and 1 <= w
        assert top + h <= height and left + w <= width


def test_crop_area_follows_the_scale_range():
    rng = np.random.default_rng(1)
    fractions = [h * w / 10_000 for _, _, h, w in
                 (sample_crop_box(100, 100, rng, (0.5, 1.0), (3 / 4, 4 / 3)) for _ in range(500))]
    assert min(fractions) > 0.45 and max(fractions) <= 1.0 and np.mean(fractions) > 0.65


def test_train_transform_is_a_function_of_its_generator():
    image = torch.randint(0, 256, (3, 30, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    transform = TrainTransform(16, crop_scale_min=0.2)
    a = transform(image, np.random.default_rng([7, 1, 3, 0]))
    b = transform(image, np.random.default_rng([7, 1, 3, 0]))
    c = transform(image, np.random.default_rng([7, 1, 3, 1]))
    assert a.shape == (3, 16, 16) and torch.equal(a, b) and not torch.equal(a, c)


def test_eval_transform_resizes_center_crops_and_normalizes():
    mean_colour = torch.tensor([round(255 * m) for m in IMAGENET_MEAN], dtype=torch.uint8).view(3, 1, 1)
    out = EvalTransform(image_size=14, resize_size=16)(mean_colour.expand(3, 40, 20).contiguous())
    assert out.shape == (3, 14, 14)
    assert out.abs().max() < 0.01  # the ImageNet mean colour normalizes to ~0


# --- config checks -----------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, key", [
    ({"dataset": "imagenet"}, "dataset"),
    ({"resize_size": 10, "image_size": 14}, "resize_size"),
    ({"crop_scale_min": 0.0}, "crop_scale_min"),
    ({"eval_every_epochs": -1.0}, "eval_every_epochs"),
    ({"epochs": 0.0}, "epochs"),
    ({"sgd_milestone_epochs": [1.0, 0.5]}, "sgd_milestone_epochs"),
    ({"num_workers": -1}, "num_workers"),
    ({"model": "resnet_unknown"}, "resnet_unknown"),
])
def test_bad_config_values_name_the_key(overrides, key):
    with pytest.raises((SuiteConfigError, ValueError), match=key):
        build("ci", **overrides)


def test_global_batch_must_be_shared_evenly_by_the_processes():
    config = {**SUITE.presets["ci"]}
    assert check_config(config, world_size=4)["global_batch_size"] == 16
    with pytest.raises(SuiteConfigError, match="global_batch_size"):
        check_config(config, world_size=3)
