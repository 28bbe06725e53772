/*
 * libFuzzer harness for the checkpoint reader (src/report/checkpoint.c): the input is a whole
 * checkpoint file.  Whatever reads back must survive a save and a second read with the same
 * evaluations.  Built and run by tests/fuzz/run.sh.
 */
#include "kvplace.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64], copy[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/kvp_fuzz_ck.%ld", (long)getpid());
        snprintf(copy, sizeof copy, "/tmp/kvp_fuzz_ck2.%ld", (long)getpid());
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
        abort();
    close(fd);
    kvp_checkpoint *ck = NULL, *again = NULL;
    kvp_error err;
    if (kvp_checkpoint_open(&ck, NULL, path, &err) < 0) {
        if (ck != NULL || err.msg[0] == 0)
            abort();
        return 0;
    }
    kvp_checkpoint_free(ck);
    /* read it, save it to copy, read the copy: the same count */
    if (kvp_checkpoint_open(&ck, copy, path, &err) < 0 ||
        kvp_checkpoint_open(&again, NULL, copy, &err) < 0 ||
        kvp_checkpoint_count(ck) != kvp_checkpoint_count(again))
        abort();
    kvp_checkpoint_free(ck);
    kvp_checkpoint_free(again);
    return 0;
}
