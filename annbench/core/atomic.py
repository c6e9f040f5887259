"""Files written atomically: a temporary file in the same folder, then a rename, so no reader sees half of one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def write_npz(path: Path, **arrays: Any) -> Path:
    """``np.savez`` of ``arrays`` into ``path`` through a temporary file renamed into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
