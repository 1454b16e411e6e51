"""Load an SR checkpoint without ever running code from it.

In: a checkpoint path or fsspec URI (`file://`, `s3://`): a Lightning `.ckpt` (read with
`torch.load(weights_only=True)` only) or a `.safetensors` file with a JSON sidecar `<stem>.json` holding
`{"crisp_meta": {...}}`. Out: `(module, meta)`: the arch in eval mode carrying the EMA weights when the
checkpoint has them (else the live weights) and a `CheckpointMeta`; or `CheckpointRejected` whose
`reason` (a `LoadReason`) and message say why.

Rejected, never half-loaded: a missing file; a corrupted or truncated file; a pickle that needs code to
load (a class instance, an `os.system` reduce; the weights-only unpickler refuses it before anything
runs); a missing or malformed `crisp_meta`; `hyper_parameters` that disagree with it; an unknown arch
or options; a scale other than the one requested; weights that do not fit the arch; NaN/inf weights.

Weights are accepted under `state_dict` with or without a Lightning attribute prefix (`model.`, `net.`);
EMA weights under `ema_state_dict` (flat) or `ema["weights"]` (training/fit/ema.py's format).
"""

from __future__ import annotations

import io
import json
import pickle
import pickletools
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from pipeline.storage import read_uri
from schemas.errors import CrispError
from training.gates.verdict import CheckpointMeta
from training.tasks import get_task

_PREFIXES = ("", "model.", "net.", "module.")
# Opcodes that import or call something: a pickle holding any of them needs code to load.
_CODE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "BUILD"}
# Opcodes that push a string (STACK_GLOBAL takes its module and name from the two before it).
_STRING_OPCODES = {
    op.name for op in pickletools.opcodes if op.name.endswith(("STRING", "UNICODE", "UNICODE8"))
}
# How torch's weights-only unpickler names what it refused (torch/_weights_only_unpickler.py).
_REFUSED = (
    re.compile(r"GLOBAL (\S+) (?:whose module|was not an allowed)"),
    re.compile(r"unrecognized function (.+?)(?: which belongs to|$)"),
    re.compile(r"but got <class '([^']+)'>"),
    re.compile(r"must be imported to load (.+)$"),
)


class LoadReason(StrEnum):
    NOT_FOUND = "checkpoint_not_found"
    CORRUPT = "checkpoint_corrupt"
    UNSAFE_PAYLOAD = "checkpoint_unsafe_payload"
    MISSING_META = "checkpoint_missing_meta"
    INCONSISTENT_CONFIG = "checkpoint_inconsistent_config"
    UNKNOWN_ARCH = "checkpoint_unknown_arch"
    SCALE_MISMATCH = "checkpoint_scale_mismatch"
    WEIGHTS_MISMATCH = "checkpoint_weights_mismatch"
    NON_FINITE_WEIGHTS = "checkpoint_non_finite_weights"


class CheckpointRejected(CrispError, ValueError):
    """The checkpoint cannot be served; `reason` is the code, the message the detail."""

    def __init__(self, reason: LoadReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def _read_bytes(uri: str, storage_options: Mapping[str, Any] | None) -> bytes:
    try:
        return read_uri(uri, storage_options)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise CheckpointRejected(LoadReason.NOT_FOUND, f"no checkpoint file at {uri} ({exc})") from None


def _code_name(name: str) -> str:
    """`posix.system` -> `os.system` (os re-exports the platform module's functions)."""
    return re.sub(r"^(posix|nt)\.", "os.", name)


def _pickle_needs_code(data: bytes) -> str | None:
    """Name what the first code-loading opcode of a raw pickle imports or calls, without executing it."""
    strings: list[str] = []  # the strings pushed just before, for STACK_GLOBAL's module and name
    try:
        for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
            if opcode.name in _STRING_OPCODES:
                strings = [*strings, str(arg)][-2:]
            elif opcode.name in ("GLOBAL", "INST"):
                return _code_name(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) == 2:
                return _code_name(".".join(strings))
            elif opcode.name in _CODE_OPCODES:
                return f"a {opcode.name} instruction"
            elif opcode.name not in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "FRAME"):
                strings = []
    except Exception:  # not a pickle at all: plain corruption
        return None
    return None


def _torch_detail(message: str) -> str:
    """torch's own reason for refusing a weights-only load, without its advice on how to load it anyway."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", message).split("Check the documentation of torch.load")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip() and "weights_only" not in line]
    detail = lines[-1] if lines else ""
    for prefix in ("Weights only load failed.", "WeightsUnpickler error:"):
        detail = detail.removeprefix(prefix).strip()
    return re.split(r" Please (?:use|file)\b", detail)[0][:200]


def _refused_code(detail: str) -> str | None:
    """The global (function or class) torch's weights-only unpickler refused, as named in `detail`."""
    for pattern in _REFUSED:
        found = pattern.search(detail)
        if found:
            return _code_name(found.group(1))
    return None


def _torch_load(data: bytes, uri: str) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _torch_detail(str(exc))
        code, what = _refused_code(detail), "checkpoint"
        if code is None and data[:1] == b"\x80":  # PROTO: a bare pickle rather than torch's zip format
            code, what = _pickle_needs_code(data), "raw pickle"
        if code:
            raise CheckpointRejected(
                LoadReason.UNSAFE_PAYLOAD,
                f"{what} {uri} needs code to load (it contains {code}); Crisp loads weights only and refuses it",
            ) from None
        raise CheckpointRejected(
            LoadReason.CORRUPT, f"{uri} is not a readable checkpoint: {detail or type(exc).__name__}"
        ) from None
    except Exception as exc:  # truncated zip, bad header, empty file, ...
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise CheckpointRejected(LoadReason.CORRUPT, f"{uri} is corrupted or truncated: {detail}") from None


def _safetensors_load(data: bytes, uri: str, storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    from safetensors.torch import load as load_safetensors

    try:
        weights = load_safetensors(data)
    except Exception as exc:
        raise CheckpointRejected(
            LoadReason.CORRUPT, f"{uri} is not a valid safetensors file: {exc}"
        ) from None
    sidecar = uri[: -len(".safetensors")] + ".json"
    try:
        meta = json.loads(_read_bytes(sidecar, storage_options))
    except CheckpointRejected:
        raise CheckpointRejected(LoadReason.MISSING_META, f"{uri} has no JSON sidecar {sidecar}") from None
    except ValueError as exc:
        raise CheckpointRejected(
            LoadReason.MISSING_META, f"sidecar {sidecar} is not valid JSON: {exc}"
        ) from None
    meta = meta.get("crisp_meta", meta) if isinstance(meta, dict) else meta
    return {"state_dict": weights, "crisp_meta": meta}


def _parse_meta(checkpoint: Any, uri: str) -> CheckpointMeta:
    if not isinstance(checkpoint, Mapping):
        raise CheckpointRejected(
            LoadReason.MISSING_META, f"{uri} holds a {type(checkpoint).__name__}, not a dict"
        )
    raw = checkpoint.get("crisp_meta")
    model = raw.get("model") if isinstance(raw, Mapping) else None
    task = raw.get("task", "sr") if isinstance(raw, Mapping) else "sr"
    if not isinstance(model, Mapping) or "arch" not in model or (task == "sr" and "scale" not in model):
        raise CheckpointRejected(
            LoadReason.MISSING_META,
            f"{uri} has no crisp_meta.model with arch (and scale, for SR); it was not written by crisp",
        )
    lineage = {k: raw[k] for k in CheckpointMeta.model_fields if k in raw and k != "model"}
    try:
        meta = CheckpointMeta(
            arch=model["arch"],
            scale=model.get("scale"),
            arch_kwargs=dict(model.get("arch_kwargs") or {}),
            **lineage,
        )
    except ValidationError as exc:
        raise CheckpointRejected(
            LoadReason.MISSING_META, f"{uri} has a malformed crisp_meta: {exc}"
        ) from None
    hparams = checkpoint.get("hyper_parameters")
    hp_model = hparams.get("model") if isinstance(hparams, Mapping) else None
    if isinstance(hp_model, Mapping):
        for key in ("arch", "scale"):
            if key in hp_model and hp_model[key] != getattr(meta, key):
                raise CheckpointRejected(
                    LoadReason.INCONSISTENT_CONFIG,
                    f"{uri}: hyper_parameters.model.{key}={hp_model[key]!r} "
                    f"but crisp_meta says {getattr(meta, key)!r}",
                )
    return meta


def _strip_prefix(weights: Mapping[str, Any], expected: set[str]) -> dict[str, Any] | None:
    for prefix in _PREFIXES:
        stripped = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        if set(stripped) == expected:
            return stripped
    return None


def _pick_weights(checkpoint: Mapping[str, Any]) -> tuple[str, Any]:
    ema = checkpoint.get("ema_state_dict")
    if ema is None and isinstance(checkpoint.get("ema"), Mapping):
        ema = checkpoint["ema"].get("weights")
    if ema is not None:
        return "ema", ema
    return "live", checkpoint.get("state_dict")


def _check_finite(checkpoint: Mapping[str, Any], uri: str) -> None:
    for section in ("state_dict", "ema_state_dict"):
        tensors = checkpoint.get(section)
        if section == "ema_state_dict" and tensors is None and isinstance(checkpoint.get("ema"), Mapping):
            tensors = checkpoint["ema"].get("weights")
        for name, tensor in (tensors or {}).items():
            if (
                isinstance(tensor, torch.Tensor)
                and tensor.is_floating_point()
                and not torch.isfinite(tensor).all()
            ):
                raise CheckpointRejected(
                    LoadReason.NON_FINITE_WEIGHTS, f"{uri}: weight {section}[{name!r}] holds NaN/inf values"
                )


def safe_load(
    uri: str,
    expected_scale: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    data: bytes | None = None,
) -> tuple[nn.Module, CheckpointMeta]:
    """Load checkpoint `uri` safely (from `data` when the caller already read it); raise
    CheckpointRejected with a reason on any problem."""
    uri = str(uri)
    data = _read_bytes(uri, storage_options) if data is None else data
    if uri.endswith(".safetensors"):
        checkpoint = _safetensors_load(data, uri, storage_options)
    else:
        checkpoint = _torch_load(data, uri)
    meta = _parse_meta(checkpoint, uri)
    if expected_scale is not None and meta.scale != expected_scale:
        raise CheckpointRejected(
            LoadReason.SCALE_MISMATCH, f"{uri} is a x{meta.scale} model but x{expected_scale} was requested"
        )
    try:
        module = get_task(meta.task).build_arch(meta.arch, meta.scale, meta.arch_kwargs)
    except (ValueError, TypeError) as exc:
        raise CheckpointRejected(LoadReason.UNKNOWN_ARCH, f"{uri}: {exc}") from None
    _check_finite(checkpoint, uri)
    which, weights = _pick_weights(checkpoint)
    if not isinstance(weights, Mapping):
        raise CheckpointRejected(LoadReason.WEIGHTS_MISMATCH, f"{uri} has no {which} state dict")
    expected = set(module.state_dict())
    matched = _strip_prefix(weights, expected)
    if matched is None:
        found = sorted(weights)[:5]
        raise CheckpointRejected(
            LoadReason.WEIGHTS_MISMATCH,
            f"{uri}: {which} weights {found}... do not match arch {meta.arch!r} "
            f"(expects {sorted(expected)[:5]}...)",
        )
    try:
        module.load_state_dict(matched, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise CheckpointRejected(LoadReason.WEIGHTS_MISMATCH, f"{uri}: {detail}") from None
    return module.eval(), meta.model_copy(update={"weights": which, "source": uri})
