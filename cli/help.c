/* Help texts, and the parameter, preset and policy lists generated from the library's own
 * tables (so --help never disagrees with what the parser accepts). */
#include "cli.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <string.h>

static void append(char *buf, size_t len, const char *sep, const char *s)
{
    size_t used = strlen(buf);
    if (used < len)
        snprintf(buf + used, len - used, "%s%s", used ? sep : "", s);
}

void cli_default_policies(char *list, size_t list_len, char *left_out, size_t left_len)
{
    /* Those of "all" (the library leaves out the policies for small cases only, optimal). */
    kvp_policy_spec all[64];
    int n = kvp_policy_parse_list(all, sizeof all / sizeof *all, "all", NULL);
    list[0] = 0;
    left_out[0] = 0;
    for (int i = 0; i < n; i++) {
        const char *name = kvp_policy_name(all[i].ops);
        if (!kvp_policy_is_default(all[i].ops))
            append(left_out, left_len, ", ", name);
        else
            append(list, list_len, ",", name);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Parameters                                                                               */

/* Upper bounds at or beyond the type's reach (2^64, or infinite) mean "no limit". */
#define NO_LIMIT 18446744073709551615.0

static void print_range(const kvp_param_info *p)
{
    if (p->kind == KVP_PK_VARIATION) {
        printf("low | actual | high");
        return;
    }
    /* %.15g keeps whole numbers exact up to 2^49; beyond that 15 digits say enough */
    if (p->max >= NO_LIMIT) {
        printf("at least %.15g", p->min);
        return;
    }
    int whole = p->kind == KVP_PK_COUNT || p->kind == KVP_PK_U64 || p->kind == KVP_PK_BYTES;
    if (whole)
        printf("%.15g .. %.15g", p->min, p->max);
    else
        printf("[%.15g, %.15g%s", p->min, p->max, p->max_open ? ")" : "]");
}

void cli_print_params(void)
{
    size_t n;
    const kvp_param_info *params = kvp_params(&n);
    const char *group = NULL;
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (strlen(params[i].name) > w)
            w = strlen(params[i].name);
    printf("Scenario parameters (--set name=value, or name = value in a --config file).\n"
           "Sizes accept k M G T P (powers of 1000) and Ki Mi Gi Ti Pi (powers of 1024),\n"
           "optionally followed by B or B/s: 24GB, 8GiB, 4.9TB/s.\n");
    for (size_t i = 0; i < n; i++) {
        const kvp_param_info *p = &params[i];
        if (!group || strcmp(group, p->group) != 0) {
            group = p->group;
            printf("\n%s:\n", group);
        }
        printf("  %-*s  default %s", (int)w, p->name, p->deflt);
        if (p->unit && *p->unit)
            printf(" %s", p->unit);
        printf(", range ");
        print_range(p);
        printf("\n  %-*s  %s\n", (int)w, "", p->doc);
    }
}

int cli_cmd_params(const cli_args *a)
{
    for (int i = 0; i < a->argc; i++) {
        if (cli_is_help(a->argv[i])) {
            printf("Usage: kvplace params\n\nLists every scenario parameter with its unit, "
                   "default, range and meaning.\n");
            return CLI_EXIT_OK;
        }
        return cli_unknown_arg(a, a->argv[i]);
    }
    cli_print_params();
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Presets                                                                                  */

/* Prints "a=1 b=2 c=3" wrapped at the column limit, each line indented. */
#define WRAP_COLUMNS 96
#define PRESET_INDENT "      "

static void print_wrapped(const char *text)
{
    size_t col = 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, " ");
        if (!len)
            break;
        if (col && col + 1 + len > WRAP_COLUMNS) {
            putchar('\n');
            col = 0;
        }
        if (!col) {
            fputs(PRESET_INDENT, stdout);
            col = strlen(PRESET_INDENT);
        } else {
            putchar(' ');
            col++;
        }
        printf("%.*s", (int)len, p);
        col += len;
        p += len;
    }
    if (col)
        putchar('\n');
}

/* A hardware preset's tiers and links, as the model sees them. */
static void print_machine(const kvp_preset *p)
{
    kvp_scenario sc;
    kvp_derived d;
    kvp_error err;
    kvp_scenario_default(&sc);
    if (kvp_preset_apply(&sc, p->name, "hw", &err) < 0 ||
        kvp_scenario_derive(&sc, &d, &err) < 0) {
        printf("%s(%s)\n", PRESET_INDENT, err.msg);
        return;
    }
    for (uint32_t k = 0; k < d.tiers; k++) {
        char cap[32], bw[32];
        cli_format_bytes(cap, sizeof cap, (double)(k ? d.tier_capacity[k] : sc.hbm_capacity));
        cli_format_bytes(bw, sizeof bw, d.tier_bandwidth[k]);
        printf("%stier %u: %s at %s/s", PRESET_INDENT, k, cap, bw);
        if (k)
            printf(", behind link %u", d.tier_link[k]);
        printf("\n");
    }
    for (uint32_t j = 1; j < KVP_MAX_TIERS; j++) {
        if (!(d.link_up[j] > 0))
            continue;
        char up[32], down[32];
        cli_format_bytes(up, sizeof up, d.link_up[j]);
        cli_format_bytes(down, sizeof down, d.link_down[j]);
        printf("%slink %u: %s/s up (to HBM), %s/s down\n", PRESET_INDENT, j, up, down);
    }
}

int cli_cmd_presets(const cli_args *a)
{
    for (int i = 0; i < a->argc; i++) {
        if (cli_is_help(a->argv[i])) {
            printf("Usage: kvplace presets\n\nLists the hardware (--hw) and model (--model) "
                   "presets with the values they set.\n");
            return CLI_EXIT_OK;
        }
        return cli_unknown_arg(a, a->argv[i]);
    }
    size_t n;
    const kvp_preset *ps = kvp_presets(&n);
    static const struct {
        const char *kind, *title;
    } kinds[] = {{"hw", "Hardware presets (--hw NAME)"}, {"model", "Model presets (--model NAME)"}};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        printf("%s%s:\n", k ? "\n" : "", kinds[k].title);
        for (size_t i = 0; i < n; i++) {
            if (strcmp(ps[i].kind, kinds[k].kind) != 0)
                continue;
            printf("  %-20s %s\n", ps[i].name, ps[i].doc);
            print_wrapped(ps[i].assignments);
            if (k == 0)
                print_machine(&ps[i]);
        }
    }
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Policies                                                                                 */

void cli_print_policies(void)
{
    size_t n;
    const kvp_policy_ops *const *ops = kvp_policies(&n);
    char list[1024], left_out[256];
    cli_default_policies(list, sizeof list, left_out, sizeof left_out);
    printf("Policies (--policy name[:key=value...][,name...]; \"all\" for every one):\n");
    for (size_t i = 0; i < n; i++) {
        size_t np;
        const kvp_policy_param *pp = kvp_policy_params(ops[i], &np);
        printf("  %-10s %s%s\n", kvp_policy_name(ops[i]), kvp_policy_doc(ops[i]),
               kvp_policy_online(ops[i]) ? " [online]" : "");
        for (size_t k = 0; k < np; k++)
            printf("  %-10s   %s=%g: %s (%g .. %g%s)\n", "", pp[k].name, pp[k].deflt,
                   pp[k].doc, pp[k].min, pp[k].max, pp[k].integer ? ", whole" : "");
    }
    printf("Without --policy: %s", list);
    if (left_out[0])
        printf(" (not %s: slow)", left_out);
    printf(".\n");
}

/* `kvplace policies --json`: every policy, its parameters and its online flag, for scripts. */
static int print_policies_json(void)
{
    size_t n;
    const kvp_policy_ops *const *ops = kvp_policies(&n);
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "policies");
    int bad = !root || !arr || !cJSON_AddStringToObject(root, "kvplace_version", KVP_VERSION);
    for (size_t i = 0; !bad && i < n; i++) {
        size_t np;
        const kvp_policy_param *pp = kvp_policy_params(ops[i], &np);
        cJSON *o = cJSON_CreateObject(), *params = NULL;
        bad = !o || !cJSON_AddItemToArray(arr, o) ||
              !cJSON_AddStringToObject(o, "name", kvp_policy_name(ops[i])) ||
              !cJSON_AddStringToObject(o, "doc", kvp_policy_doc(ops[i])) ||
              !cJSON_AddBoolToObject(o, "online", kvp_policy_online(ops[i])) ||
              !(params = cJSON_AddArrayToObject(o, "params"));
        for (size_t k = 0; !bad && k < np; k++) {
            cJSON *q = cJSON_CreateObject();
            bad = !q || !cJSON_AddItemToArray(params, q) ||
                  !cJSON_AddStringToObject(q, "name", pp[k].name) ||
                  !cJSON_AddNumberToObject(q, "default", pp[k].deflt) ||
                  !cJSON_AddNumberToObject(q, "min", pp[k].min) ||
                  !cJSON_AddNumberToObject(q, "max", pp[k].max) ||
                  !cJSON_AddBoolToObject(q, "integer", pp[k].integer) ||
                  !cJSON_AddStringToObject(q, "doc", pp[k].doc);
        }
    }
    char *text = bad ? NULL : cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return cli_error("out of memory");
    printf("%s\n", text);
    cJSON_free(text);
    return CLI_EXIT_OK;
}

int cli_cmd_policies(const cli_args *a)
{
    int json = 0;
    for (int i = 0; i < a->argc; i++) {
        if (cli_is_help(a->argv[i])) {
            printf("Usage: kvplace policies [--json]\n\nLists the placement policies and their "
                   "parameters; [online] marks the policies\nwhose decisions at a step use only "
                   "the trace up to that step (an engine could\nrun them).  --json prints the "
                   "same as JSON on stdout: per policy its name, doc,\nonline flag and "
                   "parameters (name, default, min, max, integer, doc).\n");
            return CLI_EXIT_OK;
        }
        if (strcmp(a->argv[i], "--json") == 0) {
            json = 1;
            continue;
        }
        return cli_unknown_arg(a, a->argv[i]);
    }
    if (json)
        return print_policies_json();
    cli_print_policies();
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Commands                                                                                 */

void cli_help_run(void)
{
    printf(
        "Usage: kvplace run [OPTIONS]\n"
        "\n"
        "Simulates decode on a scenario (hardware, model, workload) and a trace, once per\n"
        "policy, and prints one row per policy: time, throughput, speedups over static and\n"
        "unlimited, HBM hit rates, bytes moved.\n"
        "\n"
        "Scenario (applied in this order: defaults; --hw, --model, --config in command-line\n"
        "order; then every --set in order):\n"
        "  --hw PRESET|FILE      hardware preset (kvplace presets) or config file\n"
        "  --model PRESET|FILE   model preset or config file\n"
        "  --config FILE         INI file of name = value (hw = and model = apply presets)\n"
        "  --set NAME=VALUE      one parameter (repeatable; see the list below)\n"
        "\n"
        "Trace (one of):\n"
        "  --trace FILE.npy      scores or access marks of shape (steps, layers, context),\n"
        "                        or (steps, layers, heads, context): one stream per KV head;\n"
        "                        it defines prompt and steps.  Repeat it for a batch of\n"
        "                        distinct sequences, one file each\n"
        "  --synthetic VAR       a synthetic trace, VAR = low | actual | high (the default,\n"
        "                        with the scenario's variation, prompt, steps, seed);\n"
        "                        --set sequences=S makes S distinct sequences\n"
        "  --heads               the synthetic trace as one stream per KV head\n"
        "\n"
        "Run:\n"
        "  --policy LIST         comma-separated policies, name:key=value:...; all for every\n"
        "                        one (default: every policy but the slow ones)\n"
        "  --threads N           layers simulated in parallel (default 2); results do not\n"
        "                        depend on it\n"
        "  --check               verify the model's invariants at every step (slower)\n"
        "  --json FILE           write the scenario and every result as JSON\n"
        "  --csv FILE            write one CSV row per policy\n"
        "  --sa-log FILE         write the sa search's trajectory as CSV: every proposal's\n"
        "                        level, temperature, (W, R), time, acceptance, best so far\n"
        "                        (level 0: the start and the initial-temperature samples)\n"
        "  --checkpoint FILE     save every (W, R) point the sa search completes, as it\n"
        "                        completes; SIGINT/SIGTERM save and stop (an existing FILE is\n"
        "                        refused: continue it with --resume)\n"
        "  --resume FILE         continue a saved search (and keep saving to FILE); the\n"
        "                        result is identical to an uninterrupted run's\n"
        "  --timeline FILE       one CSV row per policy and decode step, summed over the\n"
        "                        layers: step time, busy time of each tier and link, KV\n"
        "                        bytes read from each tier, bytes moved, HBM blocks and\n"
        "                        slots (draw it with kvplace plot timeline FILE)\n"
        "  --placement FILE      which positions of one layer sit in HBM after each step:\n"
        "                        a bool .npy of shape (steps, prompt + steps)\n"
        "  --placement-policy P  whose placement (a policy name or spec of --policy;\n"
        "                        default the first)\n"
        "  --placement-layer L   which layer (default 0)\n"
        "  -q, --quiet           no progress bar or notes on stderr\n"
        "  -v, --verbose         the table even when nothing spills; per tier and per link:\n"
        "                        bytes read, written, moved, busy time\n"
        "  -h, --help            this help\n"
        "\n"
        "Every output FILE may be - (stdout: the table is then not printed), a link (its\n"
        "target is written), a device or FIFO; an output that is an input is refused.\n"
        "static and unlimited always run (they are cheap) so that every row has its\n"
        "speedups; only the policies asked for are printed and written.  Progress is shown\n"
        "on stderr when it is a terminal.  Exit status: 0 ok, 1 bad input, 2 bad usage,\n"
        "130 / 143 interrupted by SIGINT / SIGTERM (with the checkpoint saved).\n"
        "\n");
    cli_print_policies();
    printf("\n");
    cli_print_params();
}

void cli_help_trace(void)
{
    printf(
        "Usage: kvplace trace gen [SCENARIO OPTIONS] [--synthetic VARIATION] -o FILE.npy\n"
        "       kvplace trace info [SCENARIO OPTIONS] FILE.npy\n"
        "       kvplace trace info [SCENARIO OPTIONS] --synthetic VARIATION [--heads]\n"
        "\n"
        "gen writes a synthetic trace as float32 scores of shape (steps, layers,\n"
        "prompt + steps - 1); `kvplace run --trace FILE.npy` on it gives the same results as\n"
        "the synthetic run with the same parameters.  Its size is steps x layers x\n"
        "(prompt + steps - 1) x 4 bytes.\n"
        "\n"
        "info prints the shape, kind, implied prompt, steps, layers, reads per step and the\n"
        "mean overlap of consecutive read sets (at the scenario's sparsity or topk, for\n"
        "scores), of a file or of the scenario's synthetic trace.  --heads: the synthetic\n"
        "trace of each KV head (kv_heads of them, retrieval and streaming heads,\n"
        "docs/SYNTHETIC.md), and how much their sets differ: the pooled pairwise Jaccard\n"
        "and the union of their sets over one head's, per step and layer.\n"
        "\n"
        "Scenario options, as for kvplace run: --hw, --model, --config, --set NAME=VALUE\n"
        "(prompt, steps, seed, variation, sparsity; layers comes from the model).\n"
        "  -o, --output FILE     where gen writes (required)\n"
        "  -q, --quiet           no notes on stderr\n"
        "  -h, --help            this help\n");
}

void cli_help_study(void)
{
    printf(
        "Usage: kvplace study NAME [--out DIR] [OPTIONS]\n"
        "\n"
        "Runs one of the experiments of Fang et al. 2025 (arXiv 2508.13231) over its points\n"
        "and writes, into DIR (default: the current directory), NAME.csv, NAME.json, NAME.md\n"
        "(a summary that sets our numbers beside the study's), NAME.gp (the gnuplot script)\n"
        "and, when gnuplot is installed, NAME.png and NAME.svg.  docs/RESULTS.md discusses\n"
        "the results.\n"
        "\n"
        "Studies (NAME):\n"
        "  sparsity    Fig. 3: throughput / static at sparsity 0.4, 0.5, 0.6, 0.8, 0.85, 0.9\n"
        "  variation   Fig. 4: throughput / unlimited with low, actual and high variation\n"
        "  hitrate     Fig. 5: HBM hit rate per policy, the weights' share shown apart\n"
        "  batch       throughput / static at batch 1 to 32 (identical copies) and at 1 to 8\n"
        "              distinct sequences (--set sequences), weights counted and not\n"
        "  accounting  throughput / static with weights counted or not, KV per KV head or\n"
        "              per query head, at batch 1 and at the scenario's batch\n"
        "  gap         the certified optimum: plan and lpbound beside every policy, the\n"
        "              lookahead grid, sa and bound, at sparsity 0.4 to 0.9 and low/high\n"
        "              variation, weights counted and not; its own policy list (slow:\n"
        "              scale it down with --set prompt=.. --set steps=..)\n"
        "  online      every online policy / the best offline reference (plan, else the\n"
        "              best lookahead point) and / the certificate (lpbound, else bound), at\n"
        "              6 sparsities x 3 variations x weights counted or not; its own\n"
        "              policies unless --policy; not part of all\n"
        "  heads       per-head against per-token placement: the synthetic trace as one\n"
        "              stream for all KV heads and as one per KV head (run --heads), at\n"
        "              sparsity 0.4, 0.6, 0.8, 0.9, weights counted and not; the policies\n"
        "              that run on streams but sa; its own size: prompt 8000, 256 steps,\n"
        "              batch 16 unless --set prompt/steps/batch; not part of all\n"
        "  all         every study above but gap, online and heads (a point shared by two\n"
        "              studies runs once)\n"
        "\n"
        "The scenario starts from the study's own: --hw gh200-paper --model llama-3.1-8b\n"
        "--set prompt=31299 --set steps=10239 --set batch=4 --set sparsity=0.6\n"
        "--set variation=actual; then --hw, --model, --config and --set apply as for run\n"
        "(--set prompt=.. --set steps=.. scale it down).  A study's own variable (sparsity in\n"
        "sparsity, ...) overrides the scenario's value at each point.  \"Weights not counted\"\n"
        "keeps the weights' HBM capacity but drops their traffic: weight_bytes=0 and the\n"
        "weights' bytes added to reserve.\n"
        "\n");
    printf(
        "Options:\n"
        "  --out DIR             where the files go (created if missing)\n"
        "  --hw, --model, --config, --set   the scenario, as for kvplace run\n"
        "  --trace FILE.npy      a scores trace instead of the synthetic one (not with\n"
        "                        variation; a bool trace not with sparsity)\n"
        "  --policy LIST         policies, as for run (default: static, reactive, page,\n"
        "                        lookahead, sa, unlimited, bound; static and unlimited are\n"
        "                        always added)\n"
        "  --sa-budget N         most (W, R) points the sa search evaluates (each one is a\n"
        "                        full lookahead run)\n"
        "  --query-heads N       query heads, for KV per query head in accounting (default\n"
        "                        32, Llama-3.1-8B's; required for other models)\n"
        "  -j, --jobs N          points run at once, each in its own process (default:\n"
        "                        $SLURM_CPUS_PER_TASK, else the cores)\n"
        "  --shard K/N           run only the points whose index is K modulo N (a task of\n"
        "                        a Slurm job array) and write no report; once every share\n"
        "                        has run, the same command without --shard writes it\n"
        "  --threads N           layers simulated in parallel within a point (default 1)\n"
        "  --checkpoint FILE     save the sa searches' evaluations of every point as they\n"
        "                        complete; SIGINT/SIGTERM save and stop\n"
        "  --resume FILE         continue from a checkpoint; identical results\n"
        "  --from DIR            take every point's results from a sweep's directory\n"
        "                        instead of running it (kvplace sweep\n"
        "                        examples/studies/NAME.ini --out DIR, in parallel or on a\n"
        "                        cluster, with the same --set options): the same files\n"
        "  -q, --quiet           no progress or timings on stderr\n"
        "  -h, --help            this help\n"
        "\n"
        "The points run as a sweep (kvplace sweep --help): each point's results are kept\n"
        "in DIR/NAME.sweep/ as it finishes, so a killed study continues where it stopped\n"
        "with the same command, and the study's files are made from them.  With\n"
        "--checkpoint or --resume they run in this process, one after the other.\n"
        "\n"
        "The files hold no timestamps: the same inputs and seed give the same bytes (any\n"
        "--jobs, --threads or --shard).  They are written only when every point has run,\n"
        "each under a temporary name renamed at the end.  Each point's time goes to stderr.  Without gnuplot the data files are\n"
        "still written, with a warning.  Exit status: 0 ok, 1 bad input, 2 bad usage,\n"
        "130 / 143 interrupted (with the checkpoint saved).\n");
}

void cli_help_sweep(void)
{
    printf(
        "Usage: kvplace sweep SPEC --out DIR [--jobs N] [--shard K/N] [OPTIONS]\n"
        "       kvplace sweep SPEC --list [--shard K/N]\n"
        "       kvplace sweep merge DIR [--partial]\n"
        "\n"
        "Runs every point of a sweep spec (an INI file, docs/SWEEP.md): [sweep] policies,\n"
        "[base] the shared settings (hw, model, trace, any parameter of kvplace params),\n"
        "[vary] keys crossed with each other (a, b, c | range START STOP STEP | geom START\n"
        "STOP FACTOR), [zip...] sections of keys that vary together.  Each point runs in a\n"
        "worker process and its results go to DIR/points/ID.json as it finishes; a rerun\n"
        "skips the points already there, so a killed sweep resumes.  When every point is\n"
        "done, DIR/sweep.csv and DIR/sweep.json hold them all, one row per point and policy\n"
        "with the point's scenario on every row.\n"
        "\n"
        "Options:\n"
        "  -o, --out DIR         the sweep's directory (created if missing); it holds one\n"
        "                        spec's points: another spec's is refused\n"
        "  -j, --jobs N          points run at once (default: $SLURM_CPUS_PER_TASK, else the\n"
        "                        cores)\n"
        "  --threads N           layers simulated in parallel within a point (default 1)\n"
        "  --shard K/N           run only the points whose index is K modulo N (K from 0 to\n"
        "                        N-1), e.g. one task of a Slurm job array; then merge\n"
        "  --set NAME=VALUE      replace or add a [base] setting (repeatable; not a varied\n"
        "                        key): --set steps=512 scales a spec down\n"
        "  --policy LIST         replace the spec's policies\n"
        "  --list                print the points (of the shard) and exit\n"
        "  -q, --quiet           no progress on stderr\n"
        "  -h, --help            this help\n"
        "\n"
        "merge DIR gathers every point into DIR/sweep.csv and DIR/sweep.json; it names the\n"
        "points missing and writes nothing, unless --partial.  On a cluster (Slurm):\n"
        "  sbatch --array=0-9 contrib/slurm/sweep.sbatch SPEC DIR\n"
        "  kvplace sweep merge DIR\n"
        "\n"
        "Results do not depend on --jobs, --threads or --shard: the merged files are the\n"
        "same bytes.  Exit status: 0 ok, 1 bad input (a spec, a directory of another spec,\n"
        "points missing, a point that failed), 2 bad usage, 130 / 143 interrupted (the\n"
        "finished points are kept; the same command continues).\n");
}
