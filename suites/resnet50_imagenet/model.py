"""The network: a timm ResNet built from its config (never pretrained weights, never a download)."""

from __future__ import annotations

import torch

from ..config import SuiteConfigError


class ModelError(SuiteConfigError):
    """A model name timm does not know."""


def build_model(name: str, num_classes: int) -> torch.nn.Module:
    """timm's `name` (e.g. 'resnet50') with a fresh `num_classes`-way head and random init.

    timm's ResNets zero-initialize the last BatchNorm of each residual block (Goyal et al. 2017),
    the standard large-batch ImageNet recipe.
    """
    import timm

    if not timm.is_model(name):
        raise ModelError(
            f"unknown timm model '{name}': expected a name from timm.list_models(), "
            "e.g. resnet18, resnet26, resnet50, resnet101"
        )
    return timm.create_model(name, pretrained=False, num_classes=num_classes)
