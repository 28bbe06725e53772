/*
 * golden_extract FILE.json: prints the numbers of a kvplace JSON report that the golden tests
 * pin (tests/golden/README.md), one "key value" line each, in a fixed order.  A fixed list,
 * not every field: a field added to the report changes no golden file, while a number that
 * changes, or a pinned field renamed or dropped ("(missing)"), shows as a diff.
 * Doubles are printed with the fewest of 15, 16, 17 significant digits that read back to the
 * same double, as the report writes them.
 */
#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const scenario_keys[] = {"tok_bytes", "kv_budget"};
static const char *const trace_keys[] = {"prompt", "steps", "layers"};
static const char *const result_keys[] = {
    "policy",           "total_time_s",       "throughput_tok_s",     "hbm_hit_rate_kv",
    "hbm_hit_rate_all", "speedup_vs_static",  "speedup_vs_unlimited", "promoted_bytes",
    "demoted_bytes",    "kv_read_hbm_bytes",  "kv_read_dram_bytes",   "hbm_read_bytes",
    "hbm_write_bytes",  "dram_read_bytes",    "dram_write_bytes",     "link_up_bytes",
    "link_down_bytes",  "weight_read_bytes",  "block_tokens",         "slots"};

static void print_value(const char *prefix, const char *key, const cJSON *v)
{
    printf("%s%s ", prefix, key);
    if (!v) {
        printf("(missing)\n");
    } else if (cJSON_IsString(v)) {
        printf("%s\n", v->valuestring);
    } else if (cJSON_IsNull(v)) {
        printf("null\n");
    } else if (cJSON_IsNumber(v)) {
        char buf[64];
        for (int digits = 15; digits <= 17; digits++) {
            snprintf(buf, sizeof buf, "%.*g", digits, v->valuedouble);
            if (strtod(buf, NULL) == v->valuedouble)
                break;
        }
        printf("%s\n", buf);
    } else {
        printf("(not a number or string)\n");
    }
}

static void print_keys(const char *prefix, const cJSON *obj, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        print_value(prefix, keys[i], cJSON_GetObjectItemCaseSensitive(obj, keys[i]));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: golden_extract FILE.json\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap + 1);
    size_t got;
    while (text && (got = fread(text + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            char *more = realloc(text, 2 * cap + 1);
            if (!more) {
                free(text);
                text = NULL;
                break;
            }
            text = more;
            cap *= 2;
        }
    }
    fclose(f);
    if (!text) {
        fprintf(stderr, "%s: out of memory\n", argv[1]);
        return 1;
    }
    text[len] = 0;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) {
        fprintf(stderr, "%s: not JSON\n", argv[1]);
        return 1;
    }
    print_keys("scenario.", cJSON_GetObjectItemCaseSensitive(root, "scenario"), scenario_keys,
               sizeof scenario_keys / sizeof *scenario_keys);
    print_keys("trace.", cJSON_GetObjectItemCaseSensitive(root, "trace"), trace_keys,
               sizeof trace_keys / sizeof *trace_keys);
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(root, "results"))
    {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(r, "params");
        char prefix[256];
        snprintf(prefix, sizeof prefix, "%s ", cJSON_IsString(p) ? p->valuestring : "?");
        print_keys(prefix, r, result_keys, sizeof result_keys / sizeof *result_keys);
    }
    cJSON_Delete(root);
    return 0;
}
