"""Twins of standardize.wgsl + standardize_apply.wgsl (SPEC step 1) and standardize_planes.wgsl."""

from __future__ import annotations

import torch


def standardize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Zero mean, unit (population) variance over the whole image."""
    return (x - x.mean()) / torch.clamp(x.std(unbiased=False), min=eps)


def standardize_planes(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Zero mean, unit (population) variance over each plane (the last two dims) on its own: a
    crop cut from a dark or washed-out corner of the image reaches its refiner with the same
    contrast as any other."""
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.std(dim=(-2, -1), keepdim=True, unbiased=False)
    return (x - mean) / torch.clamp(std, min=eps)
