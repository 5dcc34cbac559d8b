"""Checkpoints: safe loading (weights_only), the authors' spconv 1.x weights, and this project's own format.

Weight layouts of a sparse conv kernel with kernel size (kx, ky, kz):
- spconv 1.x (the authors' checkpoint): [kx, ky, kz, Cin, Cout]; out = sum_k in[site + k] @ W[k] (the same
  orientation as torch conv3d with weight W.permute(4, 3, 0, 1, 2); spconv 1's own tests compare it so).
- spconv 2.x (this model): [Cout, kx, ky, kz, Cin] ("KRSC").
3x3x3 and 2x2x2 kernels, inverse convs included, convert with permute(4, 0, 1, 2, 3).

The 1x1x1 kernels (the seven identity-branch convs of the residual blocks whose width changes) are the
exception: spconv 2 computes a 1x1 conv as features @ weight.view(Cin, Cout) directly on its
[Cout, 1, 1, 1, Cin] tensor, i.e. it reads the memory in spconv 1's order. So they convert by a reshape
that keeps memory order (no permute): W2 = W1.reshape(Cout, 1, 1, 1, Cin), and W2.view(Cin, Cout) is
exactly spconv 1's matrix. (Permuting would compute features @ W^T-scrambled, silently wrong.) We keep
spconv's own 1x1 module and its layout, so checkpoints from other spconv 2 PointGroup ports still fit;
test_checkpoint_conversion.py proves all four conv kinds against a dense torch reference.
We do not use spconv's SPCONV_SAVED_WEIGHT_LAYOUT switch (reported to permute twice).

This project's own checkpoint: {'format': 'pointgroup_ros', 'format_version': 1, 'model': state_dict,
'config': Config.to_dict() or None, ...extra}, tensors and plain types only, so that every load can use
torch.load(weights_only=True).
"""
from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..config import Config, config_from_dict

FORMAT = "pointgroup_ros"
FORMAT_VERSION = 1
_WRAPPER_KEYS = ("model", "net", "state_dict")
_RESERVED = ("format", "format_version", "model", "config")


class CheckpointError(ValueError):
    """A checkpoint file cannot be read or does not fit the model; the message says which file and why."""


@dataclass
class Checkpoint:
    """A loaded checkpoint, its weights already in this model's layout.

    state_dict: name -> tensor (CPU), spconv 2 layout, without any 'module.' prefix.
    config: the stored Config.to_dict() (this project's files) or None (the authors' file).
    extra: any other top-level entries (epoch, optimizer state, ...).
    converted_from_spconv1: True when the file held spconv 1.x weights (the authors' checkpoint).
    """

    path: Path
    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    converted_from_spconv1: bool = False

    def make_config(self) -> Config | None:
        """The stored configuration as a validated Config, or None if the file has none."""
        return None if self.config is None else config_from_dict(self.config)


# ---- layout conversion -----------------------------------------------------------------------------------
def _layout_votes(state_dict: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    """Names of 5-D kernels that can only be spconv 1 layout, and those that can only be spconv 2."""
    v1, v2 = [], []
    for name, t in state_dict.items():
        if t.ndim != 5:
            continue
        s = tuple(t.shape)
        looks_v1 = s[0] == s[1] == s[2]  # [k, k, k, Cin, Cout]
        looks_v2 = s[1] == s[2] == s[3]  # [Cout, k, k, k, Cin]
        if looks_v1 and not looks_v2:
            v1.append(name)
        elif looks_v2 and not looks_v1:
            v2.append(name)
    return v1, v2


def is_spconv1_layout(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True if the sparse conv kernels are in spconv 1.x layout [kx, ky, kz, Cin, Cout].

    Decided by the shapes that can only be one layout; a mix of both raises CheckpointError.
    """
    v1, v2 = _layout_votes(state_dict)
    if v1 and v2:
        raise CheckpointError(f"conv weights mix spconv 1 and spconv 2 layouts (e.g. {v1[0]} "
                              f"{tuple(state_dict[v1[0]].shape)} and {v2[0]} {tuple(state_dict[v2[0]].shape)})")
    return bool(v1)


def spconv1_to_spconv2(weight: torch.Tensor) -> torch.Tensor:
    """One kernel [kx, ky, kz, Cin, Cout] -> [Cout, kx, ky, kz, Cin] as this model computes it (see module doc)."""
    if weight.ndim != 5:
        raise ValueError(f"expected a 5-D sparse conv kernel, got shape {tuple(weight.shape)}")
    kx, ky, kz, cin, cout = weight.shape
    if kx * ky * kz == 1:
        return weight.contiguous().reshape(cout, 1, 1, 1, cin)  # keep memory order: spconv 2 reads (Cin, Cout)
    return weight.permute(4, 0, 1, 2, 3).contiguous()


def convert_spconv1_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every 5-D kernel converted from spconv 1.x to this model's layout; other tensors unchanged."""
    return {k: spconv1_to_spconv2(v) if v.ndim == 5 else v for k, v in state_dict.items()}


# ---- reading ------------------------------------------------------------------------------------------------
def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _torch_load(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "weights only" in text.lower():
            # Keep torch's reason (e.g. "Unsupported global: GLOBAL mymodule.MyClass"), not its advice to
            # load unsafely.
            reason = " ".join(text.partition("WeightsUnpickler error:")[2].split())
            reason = re.split(r" was not an allowed| Check the documentation", reason)[0]
            raise CheckpointError(
                f"{path}: not a plain PyTorch checkpoint (tensors and plain containers only); refusing to unpickle "
                f"it, checkpoints are loaded with weights_only=True" + (f" ({reason})" if reason else "")) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({_first_line(exc)})") from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, ValueError, ... for broken files
        raise CheckpointError(f"{path}: cannot read it as a PyTorch checkpoint; truncated or not a torch file? "
                              f"({_first_line(exc)})") from None


def _unwrap(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, dict[str, Any]]:
    """(state_dict, config, extra) from a flat state_dict or a {'model' | 'net' | 'state_dict': ...} wrapper."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a state_dict (a mapping of names to tensors), "
                              f"found {type(obj).__name__}")
    config, extra = None, {}
    for key in _WRAPPER_KEYS:
        if isinstance(obj.get(key), Mapping):
            config = obj.get("config") if isinstance(obj.get("config"), Mapping) else None
            extra = {k: v for k, v in obj.items() if k not in (key, *_RESERVED)}
            obj = obj[key]
            break
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad or not obj:
        shown = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise CheckpointError(f"{path}: no state_dict found: expected a mapping of names to tensors "
                              f"(optionally under 'model', 'net' or 'state_dict'); "
                              + (f"non-tensor entries: {shown}" if bad else "it is empty"))
    state = dict(obj)
    if all(k.startswith("module.") for k in state):  # saved from a DataParallel wrapper
        state = {k[len("module."):]: v for k, v in state.items()}
    return state, dict(config) if config is not None else None, extra


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint safely (weights_only=True) and bring its weights into this model's layout.

    Accepts this project's files, the authors' flat spconv 1.x state_dict (converted automatically,
    'module.' prefix removed) and {'model' | 'net' | 'state_dict': ...} wrappers.
    Raises CheckpointError naming the file for a missing, truncated, foreign or non-torch file.
    """
    p = Path(path)
    state, config, extra = _unwrap(_torch_load(p), p)
    try:
        spconv1 = is_spconv1_layout(state)
    except CheckpointError as exc:
        raise CheckpointError(f"{p}: {exc}") from None
    if spconv1:
        state = convert_spconv1_state_dict(state)
    return Checkpoint(p, state, config, extra, spconv1)


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise one CheckpointError listing every missing, unexpected and mis-shaped key.

    Missing BatchNorm 'num_batches_tracked' counters are tolerated (not weights; older PyTorch had none).
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    misshaped = [f"{k}: {source} {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                 for k, v in state_dict.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or misshaped):
        return
    lines = [f"{source} does not fit the model:"]
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", misshaped)):
        if items:
            lines.append(f"  {len(items)} {title}: " + "; ".join(items[:20]) + (" ..." if len(items) > 20 else ""))
    raise CheckpointError("\n".join(lines))


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> Checkpoint:
    """Load a checkpoint (either layout, see load_checkpoint) into model; returns the Checkpoint."""
    ckpt = load_checkpoint(path)
    check_state_dict(model, ckpt.state_dict, source=str(ckpt.path))
    model.load_state_dict(ckpt.state_dict, strict=False)  # strictness checked above, counters may be absent
    return ckpt


# ---- writing ------------------------------------------------------------------------------------------------
def _check_plain(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} must be str or int")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(f"{where}: {type(value).__name__} cannot be stored (tensors and plain Python types only, "
                    "so the file loads with weights_only=True)")


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, config: Config | None = None,
                    extra: Mapping[str, Any] | None = None) -> Path:
    """Write {'format', 'format_version', 'model', 'config', **extra} atomically (temp file + rename).

    extra: epoch, optimizer.state_dict(), ... (tensors and plain Python types only).
    """
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(_RESERVED))
    if clash:
        raise ValueError(f"extra keys {clash} are reserved ({', '.join(_RESERVED)})")
    _check_plain(extra, "extra")
    obj: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION,
                           "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                           "config": config.to_dict() if config is not None else None, **extra}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p
