/*
 * libFuzzer harness for the .npy reader (src/trace/npy.c): the input is a whole file.  A file that
 * opens is then read through, every row of every layer, as a run would, so that the header's
 * promises (shape, dtype, size) are checked against the data actually read.  Built and run by
 * tests/fuzz/run.sh.
 */
#include "kvplace.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define READ_LIMIT (1u << 20) /* elements read through; larger shapes only open */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

static int write_file(const uint8_t *data, size_t size)
{
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/kvp_fuzz_npy.%ld.npy", (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(fd);
    return off == size ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kvp_trace *t = NULL;
    kvp_error err;
    if (write_file(data, size) < 0)
        abort();
    int rc = kvp_trace_open_npy(&t, path, &err);
    if (rc < 0) {
        if (t != NULL || err.msg[0] == 0)
            abort(); /* a failure sets no handle and always says why */
        return 0;
    }
    uint64_t cells = (uint64_t)kvp_trace_steps(t) * kvp_trace_layers(t) *
                     ((uint64_t)kvp_trace_prompt(t) + kvp_trace_steps(t) - 1);
    for (uint32_t l = 0; cells <= READ_LIMIT && l < kvp_trace_layers(t); l++) {
        kvp_cursor *c = NULL;
        if (kvp_cursor_create(&c, t, l, kvp_budget_sparsity(0.5), &err) < 0)
            abort();
        kvp_access a;
        uint32_t n = 0;
        while ((rc = kvp_cursor_next(c, &a, &err)) > 0) {
            /* the access set: ascending positions inside the context */
            for (uint32_t i = 0; i < a.count; i++)
                if (a.pos[i] >= a.context || (i && a.pos[i] <= a.pos[i - 1]))
                    abort();
            if (a.step != n++ || a.context != kvp_trace_prompt(t) + a.step)
                abort();
        }
        kvp_cursor_free(c);
        if (rc < 0)
            break; /* a NaN or infinite score: refused, as it must be */
    }
    kvp_trace_free(t);
    return 0;
}
