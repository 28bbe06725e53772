/*
 * libFuzzer harness for the sweep spec reader (sweep_spec_load in cli/sweep_spec.c): the input
 * is a whole spec file.  A spec that loads must give at least one point, each with a scenario
 * that validates, the settings text and an id that starts with its index, and a 16-digit
 * hash, and print nothing; a spec that fails must say why in one line ("kvplace: ...") on
 * stderr.  Either way sweep_spec_free releases everything (ASan reports a leak).  Built with
 * cli/sweep_spec.c, cli/help.c (the default policy list) and cli/util.c (cli_error) and run
 * by tests/fuzz/run.sh.
 */
#include "sweep.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64], errpath[64];

/* What the reader printed on stderr (cli_error's lines), kept in a file. */
static char said[4096];

static void fail(const char *why)
{
    fprintf(stderr, "fuzz_sweep: %s; stderr was: %s\n", why, said);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/kvp_fuzz_sweep.%ld.ini", (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
        abort();
    close(fd);

    if (!errpath[0])
        snprintf(errpath, sizeof errpath, "/tmp/kvp_fuzz_sweep.%ld.err", (long)getpid());
    int efd = open(errpath, O_RDWR | O_CREAT | O_TRUNC, 0600), saved = dup(2);
    if (efd < 0 || saved < 0)
        abort();
    fflush(stderr);
    dup2(efd, 2);
    sweep_spec s;
    int rc = sweep_spec_load(&s, path, NULL, 0, NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(efd, said, sizeof said - 1, 0);
    close(efd);
    said[n > 0 ? n : 0] = 0;
    char *nl = strchr(said, '\n');
    if (rc != 0) {
        /* one line, "kvplace: ..." */
        if (strncmp(said, "kvplace: ", 9) != 0 || !nl || nl[1] || nl == said + 9)
            fail("a refusal without its one line");
    } else {
        kvp_error err;
        if (said[0])
            fail("a spec that loads printed something");
        if (s.npts == 0 || strlen(s.hash) != SWEEP_HASH_TEXT - 1 || s.nspecs == 0)
            fail("a spec that loads has no points, hash or policies");
        for (size_t i = 0; i < s.npts; i++) {
            const sweep_point *p = &s.pts[i];
            char index[32];
            snprintf(index, sizeof index, "%04zu-", i);
            if (p->index != i || !p->settings || !p->trace ||
                strncmp(p->id, index, strlen(index)) != 0 ||
                kvp_scenario_validate(&p->sc, &err) < 0)
                fail("a point without its settings, id or a valid scenario");
        }
    }
    sweep_spec_free(&s);
    return 0;
}
