"""Persisted step outputs, content-addressed beside the database in ``<store>.objects/``.

Formats, safest first: Parquet for DataFrames, ``.npy`` (no pickle) for arrays, ``torch``
(``torch.save``, loaded back with ``weights_only=True``) for a torch tensor or a dict of them (a
``state_dict``), JSON for plain data, ``torch-module`` (``torch.save`` of a whole
``torch.nn.Module``) and pickle as the fallbacks. The last two run code when loaded (``RUNS_CODE``)
and are only ever loaded by an explicit user call. torch is never imported here unless the
value came from it (it is already in ``sys.modules``) or a torch format is loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any

from tuixp.errors import StoreError

FORMATS = ("parquet", "npy", "torch", "json", "torch-module", "pickle")
# Formats whose loading runs code stored in the file: the TUI asks before it loads one.
RUNS_CODE = frozenset({"torch-module", "pickle"})


def _torch_format(value: Any) -> str | None:
    """'torch' for a tensor or a dict of tensors, 'torch-module' for a module, else None."""
    if "torch" not in sys.modules:  # a value made by torch means torch is imported
        return None
    import torch

    if isinstance(value, torch.Tensor):
        return "torch"
    if (
        isinstance(value, dict)
        and value
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    ):
        return "torch"
    if isinstance(value, torch.nn.Module):
        return "torch-module"
    return None


def _torch_bytes(value: Any) -> bytes:
    import torch

    buf = io.BytesIO()
    # torch.save is deterministic for the same tensors (checked in tests/test_torch_persist.py),
    # so the same weights get the same hash and are stored once.
    torch.save(value, buf)
    return buf.getvalue()


def _torch_load(data: bytes, weights_only: bool) -> Any:
    import torch

    # A checkpoint saved on a GPU box loads on a CPU-only one.
    where = None if torch.cuda.is_available() else "cpu"
    return torch.load(io.BytesIO(data), map_location=where, weights_only=weights_only)


def _json_safe(value: Any) -> bool:
    try:
        return json.loads(json.dumps(value, allow_nan=True)) == value
    except (TypeError, ValueError):
        return False


def serialize(value: Any) -> tuple[bytes, str]:
    """The bytes and format of ``value`` in the safest format that round-trips it."""
    mod = type(value).__module__
    if mod.startswith("pandas") and type(value).__name__ == "DataFrame":
        buf = io.BytesIO()
        try:
            value.to_parquet(buf)
            return buf.getvalue(), "parquet"
        except Exception:  # noqa: BLE001 - odd dtypes or column names: fall through
            pass
    if mod == "numpy" and type(value).__name__ == "ndarray" and value.dtype != object:
        import numpy as np

        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return buf.getvalue(), "npy"
    torch_fmt = _torch_format(value)
    if torch_fmt is not None:
        return _torch_bytes(value), torch_fmt
    if _json_safe(value):
        return json.dumps(value, allow_nan=True).encode(), "json"
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), "pickle"


def deserialize(data: bytes, fmt: str) -> Any:
    if fmt == "parquet":
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data))
    if fmt == "npy":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    if fmt == "torch":
        return _torch_load(data, weights_only=True)
    if fmt == "torch-module":
        # Unpickles the module's class: only on the user's explicit get_persisted call.
        return _torch_load(data, weights_only=False)
    if fmt == "json":
        return json.loads(data)
    if fmt == "pickle":
        return pickle.loads(data)  # noqa: S301 - only on the user's explicit get_persisted call
    raise ValueError(f"Unknown persisted format: {fmt}")


class ObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, digest: str, fmt: str) -> Path:
        return self.root / digest[:2] / f"{digest}.{fmt}"

    def put(self, value: Any) -> tuple[str, str, int]:
        """Write ``value`` once (by content hash); return its hash, format and size in bytes."""
        data, fmt = serialize(value)
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_of(digest, fmt)
        try:
            # Already stored: mark it as fresh, so `tuixp gc` (which spares recent files) never
            # deletes it between now and the moment this trial's record is ingested.
            os.utime(path)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        return digest, fmt, len(data)

    def get(self, digest: str, fmt: str) -> Any:
        path = self.path_of(digest, fmt)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StoreError(
                f"The persisted output {path} cannot be read ({exc.strerror}): it was moved or "
                "deleted. The trial's record is intact; only this output is gone."
            ) from exc
        if hashlib.sha256(data).hexdigest() != digest:
            # Checked before anything is decoded: a damaged pickle is never loaded.
            raise StoreError(
                f"The persisted output {path} is damaged (its content no longer matches its "
                "hash), so it is not loaded. The trial's record is intact."
            )
        return deserialize(data, fmt)
