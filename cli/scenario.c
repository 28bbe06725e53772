/* The scenario options shared by `run` and `trace`: --hw, --model, --config, --set, and
 * the order in which they apply (docs/CLI.md): defaults, then presets and config files in
 * command-line order, then every --set in order, so that --set always has the last word. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

int cli_scn_init(cli_scn *s, int argc)
{
    s->n = 0;
    s->synthetic = NULL;
    s->item = calloc(argc > 0 ? (size_t)argc : 1, sizeof *s->item);
    return s->item ? 0 : cli_error("out of memory");
}

void cli_scn_free(cli_scn *s)
{
    free(s->item);
    s->item = NULL;
}

static const struct {
    const char *option;
    cli_scn_kind kind;
} scn_options[] = {
    {"--hw", CLI_SCN_HW},
    {"--model", CLI_SCN_MODEL},
    {"--config", CLI_SCN_CONFIG},
    {"--set", CLI_SCN_SET},
};

int cli_scn_option(cli_scn *s, const cli_args *a, int *i)
{
    for (size_t k = 0; k < sizeof scn_options / sizeof *scn_options; k++) {
        const char *val;
        int m = cli_opt_value(a, i, scn_options[k].option, NULL, &val);
        if (m <= 0) {
            if (m < 0)
                return m;
            continue;
        }
        if (scn_options[k].kind == CLI_SCN_SET && (!strchr(val, '=') || val[0] == '='))
            return -cli_usage(a->cmd, "--set %s: expected name=value", val);
        s->item[s->n].kind = scn_options[k].kind;
        s->item[s->n].text = val;
        s->n++;
        return 1;
    }
    return 0;
}

int cli_scn_sets(const cli_scn *s, const char *name)
{
    for (size_t k = 0; k < s->n; k++) {
        if (s->item[k].kind != CLI_SCN_SET)
            continue;
        const char *text = s->item[k].text;
        size_t len = (size_t)(strchr(text, '=') - text);
        char key[128];
        if (len >= sizeof key)
            continue;
        memcpy(key, text, len);
        key[len] = 0;
        const kvp_param_info *p = kvp_param_find(key);
        if (p && strcmp(p->name, name) == 0)
            return 1;
    }
    return 0;
}

int cli_scn_build(const cli_scn *s, kvp_scenario *sc)
{
    kvp_scenario_default(sc);
    return cli_scn_apply(s, sc);
}

int cli_scn_apply(const cli_scn *s, kvp_scenario *sc)
{
    kvp_error err = {0};
    int rc = 0;
    for (size_t k = 0; k < s->n && rc >= 0; k++) {
        const cli_scn_item *it = &s->item[k];
        switch (it->kind) {
        case CLI_SCN_HW:
            rc = kvp_preset_apply(sc, it->text, "hw", &err);
            break;
        case CLI_SCN_MODEL:
            rc = kvp_preset_apply(sc, it->text, "model", &err);
            break;
        case CLI_SCN_CONFIG:
            rc = kvp_config_load(sc, it->text, &err);
            break;
        case CLI_SCN_SET:
            break;
        }
    }
    for (size_t k = 0; k < s->n && rc >= 0; k++)
        if (s->item[k].kind == CLI_SCN_SET)
            rc = kvp_param_assign(sc, s->item[k].text, &err);
    if (rc >= 0 && s->synthetic && kvp_param_set(sc, "variation", s->synthetic, &err) < 0)
        return cli_error("--synthetic %s: %s", s->synthetic, err.msg);
    if (rc >= 0)
        rc = kvp_scenario_validate(sc, &err);
    return rc < 0 ? cli_error("%s", err.msg) : 0;
}
