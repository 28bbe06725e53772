/*
 * libFuzzer harness for the INI config reader (kvp_config_load in src/scenario/config.c): the input
 * is a whole config file.  A file that loads must leave a scenario whose every parameter
 * reads back; one that fails must leave the scenario untouched (loading is atomic).  Built
 * and run by tests/fuzz/run.sh.
 */
#include "kvplace.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/kvp_fuzz_config.%ld.ini", (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
        abort();
    close(fd);

    kvp_scenario sc, before;
    kvp_error err;
    kvp_scenario_default(&sc);
    before = sc;
    if (kvp_config_load(&sc, path, &err) < 0) {
        if (memcmp(&sc, &before, sizeof sc) != 0 || err.msg[0] == 0)
            abort();
        return 0;
    }
    size_t n;
    const kvp_param_info *p = kvp_params(&n);
    for (size_t i = 0; i < n; i++) {
        char buf[128];
        kvp_scenario back = sc;
        if (kvp_param_format(&sc, &p[i], buf, sizeof buf) < 0 ||
            kvp_param_set(&back, p[i].name, buf, &err) < 0)
            abort();
        /* Setting a parameter records that it was given (sc.given); the values must not move. */
        back.given = sc.given;
        if (memcmp(&back, &sc, sizeof sc) != 0)
            abort();
    }
    (void)kvp_scenario_validate(&sc, &err);
    return 0;
}
