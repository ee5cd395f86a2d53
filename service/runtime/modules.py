"""Building a module and loading one part of a state dict into it, holding nothing else."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

import torch
from torch import nn

ModuleType = TypeVar("ModuleType", bound=nn.Module)


def part_state_dict(
    state_dict: Mapping[str, torch.Tensor], prefix: str, drop: Iterable[str] = ()
) -> dict[str, torch.Tensor]:
    """The tensors under `prefix` ("image_encoder."), prefix removed, less names starting with one of `drop`."""
    dropped = tuple(drop)
    weights = {}
    for key, value in state_dict.items():
        if key.startswith(prefix):
            name = key[len(prefix) :]
            if not (dropped and name.startswith(dropped)):
                weights[name] = value
    return weights


def _meta_tensors(module: nn.Module) -> list[str]:
    return [name for name, tensor in (*module.named_parameters(), *module.named_buffers()) if tensor.is_meta]


def build_and_load(factory: Callable[[], ModuleType], weights: Mapping[str, torch.Tensor], device: str) -> ModuleType:
    """factory() loaded strictly with copies of `weights`, on `device`, in eval mode.

    Built on the meta device first (no memory for a random initialisation); modules whose constructor cannot
    run there (Hiera and TinyViT call .item()) or that keep non-persistent buffers (TinyViT's attention bias
    indexes) are built on the CPU. eval() comes after loading on purpose: TinyViT caches its attention biases in
    eval(), and caching the random ones would silently keep them.
    """
    copies = {name: tensor.clone() for name, tensor in weights.items()}
    try:
        with torch.device("meta"):
            module = factory()
        module.load_state_dict(copies, strict=True, assign=True)
        built_on_meta = not _meta_tensors(module)
    except (RuntimeError, NotImplementedError):  # e.g. Tensor.item() on meta inside a constructor
        built_on_meta = False
    if not built_on_meta:
        with torch.device("cpu"):
            module = factory()
        module.load_state_dict(copies, strict=True)
    module = module.to(device)
    module.eval()
    return module
