/*
 * libFuzzer harness for in-memory traces (src/trace/trace_mem.c): kvp_trace_from_buffer, what
 * the Python package hands NumPy arrays to, and the step-by-step builder.  The input chooses
 * the dtype code (valid or not), the number of dimensions and small dimensions, then gives the
 * elements (zero-filled when short, since a caller's buffer always holds its shape).  A trace
 * that is accepted is read through, every step of every layer; the builder gets the same
 * values step by step.  Built and run by tests/fuzz/run.sh.
 */
#include "kvplace.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_through(const kvp_trace *t)
{
    kvp_error err;
    for (uint32_t l = 0; l < kvp_trace_layers(t); l++) {
        kvp_cursor *c = NULL;
        if (kvp_cursor_create(&c, t, l, kvp_budget_sparsity(0.5), &err) < 0)
            abort();
        kvp_access a;
        int rc;
        while ((rc = kvp_cursor_next(c, &a, &err)) > 0)
            for (uint32_t i = 0; i < a.count; i++)
                if (a.pos[i] >= a.context || (i && a.pos[i] <= a.pos[i - 1]))
                    abort();
        if (rc < 0) /* the buffer was checked at once: nothing may fail later */
            abort();
        kvp_cursor_free(c);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const size_t itemsize[] = {4, 2, 1, 1};
    int dtype = data[0] % 4; /* 3 is not a dtype */
    size_t ndim = data[1] % 6, at = 2;
    uint64_t shape[5] = {0}, cells = 1;
    for (size_t i = 0; i < ndim; i++) {
        shape[i] = at < size ? data[at++] % 12 : 1;
        cells *= shape[i];
    }
    size_t bytes = (size_t)cells * itemsize[dtype];
    unsigned char *buf = calloc(bytes ? bytes : 1, 1);
    if (!buf)
        return 0;
    memcpy(buf, data + at, size - at < bytes ? size - at : bytes);

    kvp_error err;
    err.msg[0] = 0;
    kvp_trace *t = NULL;
    int rc = kvp_trace_from_buffer(&t, buf, dtype, ndim, shape, "fuzz", &err);
    if (rc < 0) {
        if (t != NULL || err.msg[0] == 0)
            abort(); /* a failure sets no handle and always says why */
    } else {
        read_through(t);
        kvp_trace_free(t);
    }

    /* The builder, fed the float32 reading of the same bytes step by step. */
    if (ndim == 3 && dtype == KVP_DTYPE_F32 && shape[0] && shape[1] && shape[2] >= shape[0]) {
        uint32_t n = (uint32_t)shape[0], l = (uint32_t)shape[1], c = (uint32_t)shape[2];
        uint32_t p = c - n + 1;
        kvp_trace_builder *b = NULL;
        if (kvp_trace_builder_create(&b, l, p, 0, "fuzz", &err) < 0)
            abort();
        float *step = malloc((size_t)l * c * sizeof *step);
        int ok = step != NULL;
        for (uint32_t s = 0; ok && s < n; s++) {
            for (uint32_t y = 0; y < l; y++)
                memcpy(step + (size_t)y * (p + s), buf + (((size_t)s * l + y) * c) * 4,
                       (size_t)(p + s) * 4);
            ok = kvp_trace_builder_append(b, step, &err) >= 0;
        }
        /* It accepts exactly what kvp_trace_from_buffer accepted. */
        if (ok != (rc >= 0))
            abort();
        kvp_trace *bt = NULL;
        if (kvp_trace_builder_steps(b) > 0) {
            if (kvp_trace_builder_finish(b, &bt, &err) < 0)
                abort();
            read_through(bt);
            kvp_trace_free(bt);
        }
        free(step);
        kvp_trace_builder_free(b);
    }
    free(buf);
    return 0;
}
