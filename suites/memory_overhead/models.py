"""The two model families the memory suite measures, with one synthetic training batch each.

* `bert`: `transformers.BertForMaskedLM` built from a `BertConfig` (no weights are downloaded). At the
  `small`/`paper` presets it is BERT-Base (12 layers, hidden 768, 12 heads, vocabulary 30522: 110M
  parameters); at `ci` a 2-layer, hidden-128 model of the same class.
* `resnet`: timm's `resnet50` (Bottleneck blocks) from `timm.create_model`, never pretrained. At
  `small`/`paper` the real ResNet-50 (layers 3-4-6-3, width 64, 1000 classes: 25.6M parameters);
  at `ci` the same builder with one Bottleneck block per stage and a quarter of the width.

Inputs are synthetic (random token ids with 15% MLM labels, random images with random labels):
memory and step time do not depend on what the numbers are, only on their shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from ..config import SuiteConfigError

FAMILIES = ("bert", "resnet")
MLM_IGNORE_INDEX = -100  # the label transformers' MLM loss skips

# ResNet-50 as torchvision/timm define it: the reference for naming a model "ResNet-50".
RESNET50_LAYERS = (3, 4, 6, 3)
RESNET50_WIDTH = 64
BERT_BASE_SHAPE = {"bert_layers": 12, "bert_hidden": 768, "bert_heads": 12, "bert_intermediate": 3072,
                   "bert_vocab": 30522}


@dataclass
class ModelUnderTest:
    """One model with a fixed batch: what a measurement trains on."""

    family: str
    description: str
    model: torch.nn.Module
    batch: Any
    loss: Callable[[torch.nn.Module, Any], torch.Tensor]  # mean loss over the batch
    halves: tuple[Any, Any]  # the batch split in two, for optimizers that take two gradients per step
    shape: dict[str, int]  # batch size and sequence length / image size, for the record


def build_model_under_test(family: str, config: dict[str, Any], device: torch.device, seed: int) -> ModelUnderTest:
    """Build the family's model (seeded init) and its synthetic batch on `device`."""
    if family == "bert":
        return _build_bert(config, device, seed)
    if family == "resnet":
        return _build_resnet(config, device, seed)
    raise SuiteConfigError(f"unknown model family {family!r}; accepted: {', '.join(FAMILIES)}")


def _build_bert(config: dict[str, Any], device: torch.device, seed: int) -> ModelUnderTest:
    from transformers import BertConfig, BertForMaskedLM  # slow import: only when a BERT is measured

    seq_len, batch_size = config["bert_seq_len"], config["bert_batch"]
    if seq_len > config["bert_max_positions"]:
        raise SuiteConfigError(f"bert_seq_len={seq_len} exceeds bert_max_positions={config['bert_max_positions']}")
    bert_config = BertConfig(
        vocab_size=config["bert_vocab"], hidden_size=config["bert_hidden"],
        num_hidden_layers=config["bert_layers"], num_attention_heads=config["bert_heads"],
        intermediate_size=config["bert_intermediate"], max_position_embeddings=config["bert_max_positions"],
    )
    torch.manual_seed(seed)
    model = BertForMaskedLM(bert_config).to(device).train()

    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, config["bert_vocab"], (batch_size, seq_len), generator=generator)
    masked = torch.rand(batch_size, seq_len, generator=generator) < config["mlm_probability"]
    masked[:, 0] = True  # at least one label per sequence, so every half-batch has a defined loss
    labels = torch.where(masked, input_ids, torch.full_like(input_ids, MLM_IGNORE_INDEX))
    batch = {"input_ids": input_ids.to(device), "attention_mask": torch.ones_like(input_ids).to(device),
             "labels": labels.to(device)}

    def loss(m: torch.nn.Module, b: dict[str, torch.Tensor]) -> torch.Tensor:
        return m(**b).loss

    is_base = all(config[k] == v for k, v in BERT_BASE_SHAPE.items())
    name = "BERT-Base" if is_base else "BERT"
    description = (f"{name} MLM (transformers BertForMaskedLM, L{config['bert_layers']} H{config['bert_hidden']} "
                   f"A{config['bert_heads']} I{config['bert_intermediate']}, vocab {config['bert_vocab']})")
    halves = tuple({k: v[part] for k, v in batch.items()} for part in _half_slices(batch_size))
    return ModelUnderTest("bert", description, model, batch, loss, halves,
                          {"batch_size": batch_size, "seq_len": seq_len})


def _build_resnet(config: dict[str, Any], device: torch.device, seed: int) -> ModelUnderTest:
    import timm  # slow import: only when a ResNet is measured

    layers = tuple(int(n) for n in config["resnet_layers"])
    width = int(config["resnet_width"])
    size, batch_size, classes = config["image_size"], config["resnet_batch"], config["resnet_classes"]
    torch.manual_seed(seed)
    # timm's resnet50 builder takes its block counts and widths as overrides: same class at every size.
    model = timm.create_model(
        "resnet50", pretrained=False, num_classes=classes, layers=layers,
        channels=tuple(width * 2**i for i in range(len(layers))), stem_width=width,
    ).to(device).train()

    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch_size, 3, size, size, generator=generator)
    labels = torch.randint(0, classes, (batch_size,), generator=generator)
    batch = (images.to(device), labels.to(device))

    def loss(m: torch.nn.Module, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(m(b[0]), b[1])

    is_resnet50 = layers == RESNET50_LAYERS and width == RESNET50_WIDTH
    name = "ResNet-50" if is_resnet50 else "ResNet (resnet50 family)"
    description = (f"{name} (timm resnet50, Bottleneck layers {'-'.join(map(str, layers))}, width {width}, "
                   f"{classes} classes)")
    halves = tuple((images[part].to(device), labels[part].to(device)) for part in _half_slices(batch_size))
    return ModelUnderTest("resnet", description, model, batch, loss, halves,
                          {"batch_size": batch_size, "image_size": size})


def _half_slices(batch_size: int) -> tuple[slice, slice]:
    middle = batch_size // 2
    return slice(0, middle), slice(middle, batch_size)
