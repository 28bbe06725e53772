/* Error codes and messages. */
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>

const char *kvp_strerror(int code)
{
    switch (code) {
    case KVP_OK: return "success";
    case KVP_EINVAL: return "invalid value";
    case KVP_EIO: return "input/output error";
    case KVP_EFORMAT: return "bad file format";
    case KVP_ENOMEM: return "out of memory";
    case KVP_ERANGE: return "value out of range";
    case KVP_ESHAPE: return "trace does not fit the scenario";
    case KVP_ECHECK: return "invariant violated";
    case KVP_EINTR: return "interrupted";
    default: return "unknown error";
    }
}

int kvp_error_set(kvp_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}
