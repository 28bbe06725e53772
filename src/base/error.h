/* Internal: how the library fills a kvp_error (include/kvplace.h).  Every failing function
 * sets the message and returns the code in one statement:
 *     return kvp_error_set(err, KVP_EINVAL, "%s: no such preset", name); */
#ifndef KVP_ERROR_H
#define KVP_ERROR_H

#include "kvplace.h"

/* Sets err (if not NULL) and returns code. */
int kvp_error_set(kvp_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
