"""Content hashes: of texts stored once by hash, and of step inputs and outputs.

``content_hash`` is the one hash of a Python value that the purity check, the step cache and
``tuixp repeat`` compare (the ``input_hash`` and ``output_hash`` of the ``steps`` view). Equal
content gives an equal hash in any process, after a pickle round trip, and whatever object
identities the value happens to share; a value whose hash cannot be trusted gets ``None``
(recorded as NULL: "not checked"), never a hash that may differ for the same content.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import reprlib
import struct
import sys
from collections.abc import Callable
from typing import Any

# Values above this many nodes are not walked (a list of millions of Python objects would cost
# seconds a step); their hash is None. Arrays and DataFrames count as one node whatever their size.
MAX_NODES = 2_000_000

_Update = Callable[[Any], object]  # hashlib's update: takes bytes or any buffer


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr, separators=(",", ":"))


class Unstable(Exception):
    """The value has no trustworthy content hash; the message says why."""


def content_hash(value: Any) -> str | None:
    """The content hash of ``value`` (32 hex digits), or ``None`` when it cannot be trusted.

    How each kind of value is read, so that equal content hashes equal everywhere:

    - ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, ``bytearray``:
      their type and exact value (floats bit for bit, so ``0.0`` and ``-0.0`` differ);
    - ``list`` and ``tuple``: their items in order; ``dict``: its items whatever their insertion
      order; ``set`` and ``frozenset``: their items whatever their iteration order (which
      depends on ``PYTHONHASHSEED`` for strings);
    - NumPy arrays: dtype, shape and the bytes in C order (so a non-contiguous array and its
      contiguous copy hash alike); object arrays item by item; NumPy scalars: dtype and bytes;
    - pandas ``DataFrame``, ``Series`` and ``Index``: type, shape, names, dtypes, index and values
      (numeric columns by their bytes, text columns by their characters, others by pandas' own
      seeded row hash);
    - dense torch tensors and Parameters: dtype, shape, ``requires_grad`` and their bytes (a
      module, an optimizer state: through pickle's structure, below, with these rules inside);
    - anything else (a fitted scikit-learn model, a dataclass): the structure pickle would write
      (``__reduce_ex__``: the class by its qualified name, the constructor arguments and the
      state), walked with the rules above and without pickle's memo, so shared or interned
      sub-objects do not change it. Such a hash is trusted only when the value, pickled and
      unpickled, hashes the same: otherwise (a cyclic value, one pickle cannot write, one
      whose state depends on object addresses or time) the result is ``None``.

    ``None`` means "not checked": the purity check never warns on such a value, the step cache
    still works (it keys on inputs, not on this hash), and ``tuixp repeat`` cannot say "bit for
    bit" for that step.
    """
    try:
        return _hash_checked(value)
    except (Unstable, RecursionError, MemoryError):
        return None


def content_hash_or_reason(value: Any) -> tuple[str | None, str | None]:
    """``(hash, None)``, or ``(None, why the value has no trustworthy hash)``."""
    try:
        return _hash_checked(value), None
    except Unstable as exc:
        return None, str(exc)
    except RecursionError:
        return None, "nested too deeply to hash"
    except MemoryError:
        return None, "too large to hash"


def _hash_checked(value: Any) -> str:
    walker = _Walker()
    digest = walker.digest(value)
    if walker.generic:
        try:
            again = pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception as exc:  # noqa: BLE001 - any failure means "cannot be checked"
            raise Unstable(f"cannot be pickled ({type(exc).__name__})") from None
        if _Walker().digest(again) != digest:
            raise Unstable("hashes differently after a pickle round trip")
    return digest.hex()[:32]


def _qualname(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not isinstance(name, str):
        raise Unstable(f"{type(obj).__name__} has no name to hash by")
    return f"{module}:{name}"


class _Walker:
    """One hash of one value. ``generic`` says whether some part was read through pickle's
    ``__reduce_ex__`` (and so needs the round-trip check)."""

    def __init__(self) -> None:
        self.generic = False
        self.nodes = 0
        self._path: set[int] = set()  # ids of the containers being walked: a cycle is refused

    def digest(self, value: Any) -> bytes:
        h = hashlib.sha256()
        self._feed(h.update, value)
        return h.digest()

    @staticmethod
    def _frame(update: _Update, tag: bytes, payload: bytes) -> None:
        update(tag + len(payload).to_bytes(8, "little"))
        update(payload)

    def _enter(self, value: Any) -> int:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise Unstable(f"more than {MAX_NODES:,} objects to hash")
        key = id(value)
        if key in self._path:
            raise Unstable("contains itself (a cycle)")
        self._path.add(key)
        return key

    def _feed(self, update: _Update, value: Any) -> None:
        t = type(value)
        if value is None:
            update(b"N")
        elif t is bool:
            update(b"B1" if value else b"B0")
        elif t is int:
            self._frame(update, b"I", str(value).encode())
        elif t is float:
            update(b"F" + struct.pack("<d", value))
        elif t is complex:
            update(b"C" + struct.pack("<dd", value.real, value.imag))
        elif t is str:
            self._frame(update, b"S", value.encode("utf-8", "surrogatepass"))
        elif t is bytes:
            self._frame(update, b"Y", value)
        elif t is bytearray:
            self._frame(update, b"A", bytes(value))
        elif t is list or t is tuple:
            key = self._enter(value)
            update((b"L" if t is list else b"T") + len(value).to_bytes(8, "little"))
            for item in value:
                self._feed(update, item)
            self._path.discard(key)
        elif t is dict:
            key = self._enter(value)
            pairs = sorted((self._sub(k), self._sub(v)) for k, v in value.items())
            update(b"D" + len(pairs).to_bytes(8, "little"))
            for k, v in pairs:
                update(k + v)
            self._path.discard(key)
        elif t is set or t is frozenset:
            key = self._enter(value)
            items = sorted(self._sub(i) for i in value)
            update((b"E" if t is set else b"G") + len(items).to_bytes(8, "little"))
            for i in items:
                update(i)
            self._path.discard(key)
        elif "numpy" in sys.modules and self._numpy(update, value):
            pass
        elif "pandas" in sys.modules and self._pandas(update, value):
            pass
        elif "torch" in sys.modules and self._torch(update, value):
            pass
        elif isinstance(value, type) or (t.__name__ in _NAMED_TYPES and _unbound(value)):
            self._named(update, value)
        else:
            self._generic(update, value)

    def _sub(self, value: Any) -> bytes:
        h = hashlib.sha256()
        self._feed(h.update, value)
        return h.digest()

    def _named(self, update: _Update, value: Any) -> None:
        """Classes, functions and modules: by qualified name (pickle stores them so too)."""
        name = value.__name__ if type(value).__name__ == "module" else _qualname(value)
        if "<locals>" in name or "<lambda>" in name:
            code = getattr(value, "__code__", None)
            if code is None:
                raise Unstable(f"{name} cannot be found again by its name")
            self._frame(update, b"Q", name.encode())
            self._feed(update, (code.co_code, code.co_names, _consts(code.co_consts)))
            return
        self._frame(update, b"Q", name.encode())

    def _generic(self, update: _Update, value: Any) -> None:
        self.generic = True
        key = self._enter(value)
        try:
            reduced = value.__reduce_ex__(4)
        except Exception as exc:  # noqa: BLE001 - an object pickle cannot write
            raise Unstable(f"{type(value).__name__} cannot be pickled ({exc})") from None
        if isinstance(reduced, str):  # a module-level singleton, found again by name
            self._frame(update, b"R", f"{type(value).__module__}:{reduced}".encode())
        else:
            parts = tuple(reduced) + (None,) * (6 - len(reduced))
            func, args, state, listitems, dictitems, _setter = parts[:6]
            update(b"O")
            self._feed(update, func)
            self._feed(update, tuple(args) if args is not None else None)
            self._feed(update, state)
            self._feed(update, list(listitems) if listitems is not None else None)
            self._feed(update, dict(dictitems) if dictitems is not None else None)
        self._path.discard(key)

    def _numpy(self, update: _Update, value: Any) -> bool:
        import numpy as np

        t = type(value)
        if t is np.ndarray:
            self.nodes += 1
            meta = f"{_dtype_text(value.dtype)}|{value.shape}".encode()
            self._frame(update, b"a", meta)
            if value.dtype.hasobject:
                key = self._enter(value)
                flat = value.ravel(order="C")
                if not _strings(update, flat):
                    for item in flat:
                        self._feed(update, item)
                self._path.discard(key)
            else:
                flat = np.ascontiguousarray(value).reshape(-1)
                update(flat.nbytes.to_bytes(8, "little"))
                update(flat.view(np.uint8).data)
            return True
        if isinstance(value, np.generic) and t.__module__ == "numpy":
            self.nodes += 1
            self._frame(update, b"g", _dtype_text(value.dtype).encode())
            if value.dtype.hasobject:
                self._feed(update, value.item())
            else:
                self._frame(update, b"v", np.asarray(value).tobytes())
            return True
        if t is np.dtype or isinstance(value, np.dtype):
            self._frame(update, b"t", _dtype_text(value).encode())
            return True
        return False

    def _pandas(self, update: _Update, value: Any) -> bool:
        import pandas as pd

        t = type(value)
        if t is pd.DataFrame:
            self._enter(value)
            self._frame(update, b"P", repr(value.shape).encode())
            self._feed(update, value.index)
            self._feed(update, value.columns)
            for i in range(value.shape[1]):
                self._column(update, value.iloc[:, i])
            self._path.discard(id(value))
            return True
        if t is pd.Series:
            self._enter(value)
            self._frame(update, b"Z", repr(value.shape).encode())
            self._feed(update, value.name)
            self._feed(update, value.index)
            self._column(update, value)
            self._path.discard(id(value))
            return True
        if isinstance(value, pd.Index) and t.__module__.startswith("pandas"):
            self._enter(value)
            self._frame(update, b"X", f"{t.__name__}|{value.dtype}|{len(value)}".encode())
            self._feed(update, list(value.names))
            self._column(update, value)
            self._path.discard(id(value))
            return True
        return False

    def _torch(self, update: _Update, value: Any) -> bool:
        """A dense torch tensor (or Parameter): type, dtype, shape, requires_grad and its bytes
        in C order, copied to the CPU; others (sparse, quantized, meta) go through pickle."""
        import torch  # type: ignore[import-not-found]

        t = type(value)
        if t is not torch.Tensor and t is not torch.nn.Parameter:
            return False
        if value.layout != torch.strided or value.is_quantized or value.device.type == "meta":
            return False
        self.nodes += 1
        meta = f"{t.__name__}|{value.dtype}|{tuple(value.shape)}|{value.requires_grad}"
        self._frame(update, b"o", meta.encode())
        flat = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        update(flat.numel().to_bytes(8, "little"))
        update(flat.numpy().data)
        return True

    def _column(self, update: _Update, values: Any) -> None:
        """The values of a Series or Index: numeric ones by their bytes, others by pandas'
        row hash (seeded with a fixed key, so the same in every process), else item by item."""
        import numpy as np
        import pandas as pd

        self._frame(update, b"c", str(values.dtype).encode())
        if isinstance(values.dtype, np.dtype) and not values.dtype.hasobject:
            self._numpy(update, np.asarray(values))
            return
        if _arrow_strings(update, values) or _strings(update, np.asarray(values, dtype=object)):
            return
        try:
            rows = pd.util.hash_pandas_object(values, index=False, categorize=False)
        except (TypeError, ValueError):
            self._feed(update, list(values))
            return
        self._numpy(update, np.asarray(rows))


def _arrow_strings(update: _Update, values: Any) -> bool:
    """An Arrow-backed text column (pandas' ``str`` dtype): lengths, validity and UTF-8 bytes
    straight from its buffers; False, and nothing hashed, for anything else."""
    if "pyarrow" not in sys.modules or not hasattr(values.array, "__arrow_array__"):
        return False
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = pa.array(values.array)
    except (TypeError, ValueError, pa.ArrowException):
        return False
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return False
    arr = arr.cast(pa.large_string())
    lengths = pc.binary_length(arr).fill_null(-1).to_numpy(zero_copy_only=False)
    offsets = np.frombuffer(arr.buffers()[1], dtype="<i8")[arr.offset : arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    update(b"w" + len(arr).to_bytes(8, "little"))
    update(np.ascontiguousarray(lengths, dtype="<i8").data)
    if data is not None and len(offsets):
        update(memoryview(data)[int(offsets[0]) : int(offsets[-1])])
    return True


def _dtype_text(dtype: Any) -> str:
    """A dtype exactly: byte order, size, fields (``<f8``, ``<M8[ns]``, ``[('a', '<i4'), ...]``)."""
    return repr(dtype.descr) if dtype.fields is not None else str(dtype.str)


def _strings(update: _Update, items: Any) -> bool:
    """A flat object array of nothing but ``str``: its lengths and its text, in one go (1M
    strings one by one take a second); False, and nothing hashed, for any other array."""
    import numpy as np

    if not all(type(i) is str for i in items):
        return False
    lengths = np.fromiter(map(len, items), dtype="<i8", count=len(items))
    update(b"s" + len(items).to_bytes(8, "little"))
    update(lengths.data)
    update("".join(items).encode("utf-8", "surrogatepass"))
    return True


# Types named like these are found again by their name: functions, methods, modules.
_NAMED_TYPES = frozenset(
    {"function", "builtin_function_or_method", "module", "method_descriptor", "wrapper_descriptor"}
)


def _unbound(value: Any) -> bool:
    """A function found again by its name alone: not a method bound to some object."""
    owner = getattr(value, "__self__", None)
    return owner is None or type(owner).__name__ == "module"


def _consts(consts: tuple[Any, ...]) -> tuple[Any, ...]:
    out = []
    for c in consts:
        code = c if type(c).__name__ == "code" else None
        out.append((code.co_code, _consts(code.co_consts)) if code is not None else c)
    return tuple(out)


# -- short descriptions of values, for warnings ---------------------------------------------------
_short = reprlib.Repr()
_short.maxstring = 40
_short.maxother = 40
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 4
_short.maxlevel = 2

_full = reprlib.Repr()
_full.maxstring = 2_000
_full.maxother = 4_000
_full.maxlist = _full.maxtuple = _full.maxdict = _full.maxset = 100
_full.maxlevel = 6


def describe(value: Any, limit: int = 100, digest: str | None | bool = False) -> str:
    """One short line about a value: its repr when short, else its type and shape and hash.

    ``7``, ``'ridge'``, ``ndarray float64 (1797, 64) #3fa2c1d9``, ``DataFrame (150, 5) #...``,
    ``(ndarray float64 (1797, 64), ndarray int64 (1797,)) #...``; ``#unstable`` when the value
    has no trustworthy hash. ``digest`` is the value's content hash when the caller has it
    already (``False``: compute it).
    """
    short = _short_repr(value)
    if short is not None:
        return short
    if isinstance(value, (str, bytes)):  # a long text or path: its two ends
        text = repr(value)
        return f"{text[:30]}...{text[-30:]} ({type(value).__name__}[{len(value)}])"
    if digest is False:
        digest = content_hash(value)
    out = f"{_outline(value, 0)} #{digest[:8] if isinstance(digest, str) else 'unstable'}"
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _short_repr(value: Any, width: int = 40) -> str | None:
    try:
        text = _short.repr(value)
    except Exception:  # noqa: BLE001 - a value whose repr fails is still described
        return None
    if len(text) <= width and "\n" not in text and "..." not in text:
        return text
    return None


def _outline(value: Any, depth: int) -> str:
    """Type and shape, without the content: ``ndarray float64 (3, 4)``, ``list[1000]``."""
    t = type(value)
    if t in (list, tuple) and 0 < len(value) <= 4 and depth < 2:
        inner = ", ".join(_short_repr(i, 20) or _outline(i, depth + 1) for i in value)
        return f"[{inner}]" if t is list else f"({inner}{',' if len(value) == 1 else ''})"
    parts = [t.__name__]
    dtype = getattr(value, "dtype", None)
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and dtype is not None and not callable(dtype):
        parts.append(str(dtype))
    if isinstance(shape, tuple):
        parts.append(str(shape))
    elif isinstance(value, (list, tuple, dict, set, frozenset, str, bytes)):
        parts[0] = f"{t.__name__}[{len(value)}]"
    return " ".join(parts)


class InputPrint:
    """What the purity check keeps of a step's inputs: their hash, a one-line summary for the
    warning, and the (bounded) full text for the trial's notes."""

    __slots__ = ("hash", "summary", "text")

    def __init__(self, hash: str | None, summary: str, text: str) -> None:
        self.hash, self.summary, self.text = hash, summary, text


def fingerprint_inputs(args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> InputPrint:
    """The content hash of a step's arguments (``None`` if one has none), hashing each once."""
    arg_hashes = [content_hash(a) for a in args]
    kw_hashes = {k: content_hash(v) for k, v in kwargs.items()}
    known = None not in arg_hashes and None not in kw_hashes.values()
    digest = content_hash(["inputs", arg_hashes, kw_hashes]) if known else None
    described = [describe(a, digest=h) for a, h in zip(args, arg_hashes)]
    inner = ", ".join(described) + ("," if len(described) == 1 else "")
    kw = ", ".join(f"{k!r}: {describe(v, digest=kw_hashes[k])}" for k, v in kwargs.items())
    summary = f"args: ({inner}), kwargs: {{{kw}}}"
    if len(summary) > 300:
        summary = summary[:297] + "..."
    return InputPrint(digest, summary, full_repr(args, kwargs))


def full_repr(args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any], limit: int = 8_000) -> str:
    """The inputs' repr as a person would read it (bounded: containers and texts are cut)."""
    try:
        text = f"args: {_full.repr(tuple(args))}, kwargs: {_full.repr(kwargs)}"
    except Exception:  # noqa: BLE001 - an input whose repr fails still runs
        text = f"args: {len(args)} value(s) without a repr, kwargs: {sorted(kwargs)}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
