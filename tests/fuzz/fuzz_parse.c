/*
 * libFuzzer harness for the text parsers of the command line: --set's kvp_param_assign, the
 * byte and bandwidth parsers, and the policy-spec parsers.  The first byte picks the parser,
 * the rest is the text.  Beyond not crashing, what parses must read back: a parameter from
 * kvp_param_format, and a policy spec from kvp_policy_format, to the same bits.  Built and
 * run by tests/fuzz/run.sh.
 */
#include "kvplace.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SPECS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void param_roundtrip(const char *text)
{
    kvp_scenario sc, back;
    kvp_error err;
    kvp_scenario_default(&sc);
    if (kvp_param_assign(&sc, text, &err) < 0) {
        if (err.msg[0] == 0)
            abort();
        return;
    }
    size_t n;
    const kvp_param_info *p = kvp_params(&n);
    for (size_t i = 0; i < n; i++) {
        char buf[128];
        back = sc;
        if (kvp_param_format(&sc, &p[i], buf, sizeof buf) < 0 ||
            kvp_param_set(&back, p[i].name, buf, &err) < 0)
            abort();
        /* Setting a parameter records that it was given (sc.given); the values must not move. */
        back.given = sc.given;
        if (memcmp(&back, &sc, sizeof sc) != 0)
            abort();
    }
}

static void policy_roundtrip(const kvp_policy_spec *ps)
{
    char buf[512];
    kvp_policy_spec back;
    kvp_error err;
    kvp_policy_format(ps, buf, sizeof buf);
    if (kvp_policy_parse(&back, buf, &err) < 0 || back.ops != ps->ops ||
        memcmp(back.value, ps->value, sizeof back.value) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    kvp_error err;
    uint64_t bytes;
    double bw;
    kvp_policy_spec ps[MAX_SPECS];
    int n;
    switch (data[0] % 4) {
    case 0:
        param_roundtrip(text);
        break;
    case 1:
        if (kvp_parse_bytes(text, &bytes, &err) < 0 && err.msg[0] == 0)
            abort();
        if (kvp_parse_bandwidth(text, &bw, &err) == 0 && !(bw > 0 && isfinite(bw)))
            abort(); /* a bandwidth is positive and finite */
        break;
    case 2:
        if (kvp_policy_parse(&ps[0], text, &err) == 0)
            policy_roundtrip(&ps[0]);
        break;
    default:
        n = kvp_policy_parse_list(ps, MAX_SPECS, text, &err);
        for (int i = 0; i < n; i++)
            policy_roundtrip(&ps[i]);
        break;
    }
    free(text);
    return 0;
}
