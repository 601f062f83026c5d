"""The course notebook's network sizes, written once: the defaults of the encoder and of every model family."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CourseSizes:
    """The course notebook's network sizes: every family's defaults, written once.

    ``widths`` are ``Net``'s three convolutions, ``branch_widths`` those of each branch of the
    intermediate networks (half as wide, so the two branches together match ``Net``'s budget);
    ``hidden`` the head's hidden layers; inputs are ``channels`` x ``image_size`` x ``image_size``
    (RGBA and XYZA); the targets are ``num_outputs`` = three objects' x, y, z.
    """

    channels: int = 4
    widths: tuple[int, ...] = (50, 100, 200)
    branch_widths: tuple[int, ...] = (25, 50, 100)
    kernel_size: int = 3
    hidden: tuple[int, ...] = (1000, 100)
    num_outputs: int = 9
    image_size: int = 64


COURSE = CourseSizes()
