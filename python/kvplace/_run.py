"""kvplace.run: a scenario, a trace and policies in; the JSON report as plain dicts out."""
import ctypes
import json
import os

import numpy as np

from . import _lib
from ._lib import Error

_DTYPES = {np.dtype(np.float32): _lib.DTYPE_F32, np.dtype(np.float16): _lib.DTYPE_F16,
           np.dtype(np.bool_): _lib.DTYPE_BOOL}


def _ops():
    n = ctypes.c_size_t()
    ops = _lib.lib.kvp_policies(ctypes.byref(n))
    return [ops[i] for i in range(n.value)]


def policies():
    """Every policy's name, in the library's order."""
    return [_lib.lib.kvp_policy_name(op).decode() for op in _ops()]


def default_policies():
    """The policies `kvplace run` runs when none are named: all but the slow ones (the
    library's kvp_policy_is_default says which)."""
    return [_lib.lib.kvp_policy_name(op).decode() for op in _ops()
            if _lib.lib.kvp_policy_is_default(op)]


def _streams(trace, settings):
    """Whether the run will have several streams: a 4-D trace, or synthetic sequences."""
    for d in (settings or {}, trace if isinstance(trace, dict) else {}):
        if str(d.get("sequences", 1)) not in ("1", "1.0"):
            return True
    if isinstance(trace, (str, bytes, os.PathLike)):
        try:
            return np.load(trace, mmap_mode="r").ndim == 4
        except (OSError, ValueError):
            return False  # the library names what is wrong with the file
    return trace is not None and not isinstance(trace, dict) and np.ndim(trace) == 4


def _text(name, value):
    if isinstance(value, bool) or value is None:
        raise Error("%s: %r is not a value (give a number or a string such as '24GB')"
                    % (name, value), -1)
    if isinstance(value, float):  # Python's and NumPy's float64
        return repr(float(value))  # the shortest text that reads back to the same double
    return str(value)  # ints, text, np.float32 (its shortest text: 0.6, not 0.6000000238)


def _as_trace_array(trace):
    """A C-contiguous, native-order array of a supported dtype, or Error."""
    a = np.asarray(trace)
    if a.dtype not in _DTYPES and a.dtype.newbyteorder("=") not in _DTYPES:
        raise Error("trace: dtype %s is not supported (float32, float16 or bool); convert "
                    "it, e.g. trace.astype(np.float32)" % a.dtype, -1)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))  # the same values, native byte order
    return np.ascontiguousarray(a)


def run(trace=None, hw=None, model=None, config=None, set=None, policies=None, threads=0):
    """Runs policies on a trace, as `kvplace run` does, and returns its JSON report as a dict.

    trace    None (the synthetic trace of the scenario), a dict of synthetic-trace parameters
             ({"prompt": 2000, "steps": 100, "seed": 3, "variation": "high"}), a path to a
             .npy file, or a NumPy array (steps, layers, positions) of float32, float16 or
             bool, or (steps, layers, heads, positions) with heads = kv_heads: one stream
             per KV head (docs/MODEL.md section 12).
    hw, model  preset names or config files, applied in that order, then `config`.
    set      {parameter: value} applied last, in order (values as numbers or as text:
             "24GB", "4.9TB/s").
    policies a list (or comma-separated string) of policy specs; None: the CLI's default
             (on several streams, a 4-D trace or set={"sequences": S}, those of it that run
             on streams).
    threads  layers simulated in parallel (0: the library's default); results do not depend
             on it.

    The report has the keys of `kvplace run --json`: kvplace_version, scenario, trace, seed,
    results (one dict per policy).  Raises kvplace.Error on any bad input.
    """
    if policies is None:
        policies = default_policies()
        if _streams(trace, set):
            policies = [p for p, op in zip(policies, [o for o in _ops()
                                                      if _lib.lib.kvp_policy_is_default(o)])
                        if _lib.lib.kvp_policy_streams(op)]
    if not isinstance(policies, str):
        policies = ",".join(policies)
    err = _lib.new_error()
    L = _lib.lib
    s = ctypes.c_void_p()
    _lib.check(L.kvp_session_create(ctypes.byref(s), ctypes.byref(err)), err)
    try:
        for kind, name in (("hw", hw), ("model", model), (None, config)):
            if name is not None:
                _lib.check(L.kvp_session_preset(s, os.fsencode(name),
                                                kind.encode() if kind else None,
                                                ctypes.byref(err)), err)
        for key, value in (set or {}).items():
            _lib.check(L.kvp_session_set(s, str(key).encode(), _text(key, value).encode(), 0,
                                         ctypes.byref(err)), err)
        if isinstance(trace, dict):
            for key, value in trace.items():
                _lib.check(L.kvp_session_set(s, str(key).encode(),
                                             _text(key, value).encode(), 1,
                                             ctypes.byref(err)), err)
        elif isinstance(trace, (str, bytes, os.PathLike)):
            _lib.check(L.kvp_session_trace_npy(s, os.fsencode(trace), ctypes.byref(err)), err)
        elif trace is not None:
            a = _as_trace_array(trace)
            shape = (ctypes.c_uint64 * max(a.ndim, 1))(*a.shape)
            _lib.check(L.kvp_session_trace_buffer(
                s, a.ctypes.data_as(ctypes.c_void_p), _DTYPES[a.dtype], a.ndim, shape,
                b"array", ctypes.byref(err)), err)
        _lib.check(L.kvp_session_run(s, policies.encode(), int(threads), ctypes.byref(err)),
                   err)
        return json.loads(L.kvp_session_json(s).decode())
    finally:
        L.kvp_session_free(s)
