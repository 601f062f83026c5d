"""Random ``Samples`` for trainer tests: RGBA bytes, depths up to 60 (some misses), 16 x 16 grids."""

import torch

from fusionzoo.data import Samples


def random_samples(count: int, seed: int, size: int = 16, outputs: int = 9) -> Samples:
    """``count`` samples drawn from ``seed``: the same seed gives the same tensors."""
    g = torch.Generator().manual_seed(seed)
    return Samples(
        torch.randint(0, 256, (count, 4, size, size), dtype=torch.uint8, generator=g),
        torch.rand(count, size, size, generator=g) * 60,
        torch.randn(count, outputs, generator=g) * 3,
        torch.linspace(-1.0, 1.0, size),
        torch.linspace(-0.3, 0.3, size),
    )
