"""Content hashes for texts stored once by hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr, separators=(",", ":"))
