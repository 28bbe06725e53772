"""The C library through ctypes: finding libkvplace.so and declaring the functions used.

Only opaque handles, strings, integers and the small kvp_error struct cross the boundary, so
nothing here depends on the layout of the library's other structs (docs/PYTHON.md).
"""
import ctypes
import os

from . import _paths


class Error(ValueError):
    """A failure reported by kvplace: bad input (an array, a file, a parameter) or a run
    that could not complete.  `code` is the library's KVP_E* code (negative), `message`
    the one-line message (it names the file, value or position at fault)."""

    def __init__(self, message, code=-1):
        super().__init__(message)
        self.code = code
        self.message = message


class _KvpError(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("msg", ctypes.c_char * 512)]


def _candidates():
    env = os.environ.get("KVPLACE_LIB")
    if env:
        yield env
        return
    if _paths.LIBDIR:  # written by `make install`
        yield os.path.join(_paths.LIBDIR, "libkvplace.so.0")
    # A checkout: python/kvplace/ beside build/.
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "..", "..", "build", "libkvplace.so")
    yield "libkvplace.so.0"


def _load():
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(path + " (missing)")
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise ImportError("kvplace: cannot load libkvplace.so; build it with `make` or install "
                      "it with `make install` (or set KVPLACE_LIB).  Tried: " + "; ".join(tried))


lib = _load()

_c = ctypes
_P = _c.c_void_p
_PP = _c.POINTER(_c.c_void_p)
_E = _c.POINTER(_KvpError)
_S = _c.c_char_p

for name, res, args in [
    ("kvp_session_create", _c.c_int, [_PP, _E]),
    ("kvp_session_free", None, [_P]),
    ("kvp_session_preset", _c.c_int, [_P, _S, _S, _E]),
    ("kvp_session_set", _c.c_int, [_P, _S, _S, _c.c_int, _E]),
    ("kvp_session_trace_npy", _c.c_int, [_P, _S, _E]),
    ("kvp_session_trace_buffer", _c.c_int,
     [_P, _P, _c.c_int, _c.c_size_t, _c.POINTER(_c.c_uint64), _S, _E]),
    ("kvp_session_run", _c.c_int, [_P, _S, _c.c_uint, _E]),
    ("kvp_session_json", _S, [_P]),
    ("kvp_policies", _c.POINTER(_c.c_void_p), [_c.POINTER(_c.c_size_t)]),
    ("kvp_policy_name", _S, [_P]),
    ("kvp_policy_is_default", _c.c_int, [_P]),
    ("kvp_policy_streams", _c.c_int, [_P]),
]:
    f = getattr(lib, name)
    f.restype = res
    f.argtypes = args

# kvp_dtype
DTYPE_F32, DTYPE_F16, DTYPE_BOOL = 0, 1, 2


def check(rc, err):
    """Raises Error for a negative return code."""
    if rc < 0:
        raise Error(err.msg.decode("utf-8", "replace"), rc)
    return rc


def new_error():
    return _KvpError()
