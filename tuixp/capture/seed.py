"""Seeding the random generators a step may use: random, numpy, and torch if already imported."""

from __future__ import annotations

import random
import sys
import zlib


def new_seed() -> int:
    return random.SystemRandom().randrange(2**31)


def step_seed(seed: int, step_name: str) -> int:
    """The seed of one step: derived from the trial's seed and the step's name.

    Each step gets its own, so the result does not depend on the order in which parallel steps
    ran, or on which worker ran them.
    """
    return (seed + zlib.crc32(step_name.encode())) % (2**32)


def apply_seed(seed: int) -> None:
    random.seed(seed)
    # Only libraries the program has imported; through the import statement, never straight
    # from sys.modules: there a module another thread is still importing is half made (numpy
    # without numpy.random), and the import statement waits for that thread to finish it.
    if "numpy" in sys.modules:
        import numpy

        numpy.random.seed(seed % (2**32))
    if "torch" in sys.modules:
        import torch  # type: ignore[import-not-found]

        torch.manual_seed(seed)
