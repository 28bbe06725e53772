/*
 * kvplace: the command-line program.  This file dispatches commands and holds the default
 * scenario; each command lives in its own file (run.c, trace_cmd.c, help.c).
 * docs/CLI.md is the user's guide.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/*
 * The scenario `kvplace` runs with no command: the paper's GH200 and Llama-3.1-8B on a
 * synthetic trace, sized to finish in seconds on two cores while the KV cache does not fit
 * HBM (if it did, static would equal unlimited and the run would show nothing):
 *   tok_bytes = 2 * 8 KV heads * 128 dims * 2 bytes * batch 32 = 131072 bytes;
 *   slots per layer = floor(kv_budget 7939477504 / (32 layers * 131072)) = 1892,
 * under half the 4096 prompt tokens: static spills most of the KV, and the dynamic
 * policies have something to win (at batch 16 the KV nearly fits and static wins).
 * Policies: run's default, every one but sa, which alone takes twice as long as all the
 * others together here (about 2 s against 1 s on two cores; 15 s under the sanitizers).
 * It is a command line so that it goes through exactly the path a user's would (--set is
 * kvp_param_assign), and so that the note can print it for the user to vary.
 */
static const char *const default_run_args[] = {
    "--hw",  "gh200-paper",  "--model", "llama-3.1-8b", "--synthetic", "actual",
    "--set", "sparsity=0.6", "--set",   "batch=32",     "--set",       "prompt=4096",
    "--set", "steps=256",
};

#define NDEFAULT_ARGS (sizeof default_run_args / sizeof *default_run_args)
#define NOTE_MAX 1024

static int run_default(void)
{
    char note[NOTE_MAX] = "kvplace run";
    for (size_t i = 0; i < NDEFAULT_ARGS; i++) {
        size_t used = strlen(note);
        snprintf(note + used, sizeof note - used, " %s", default_run_args[i]);
    }
    char list[NOTE_MAX], left_out[NOTE_MAX];
    cli_default_policies(list, sizeof list, left_out, sizeof left_out);
    fprintf(stderr, "kvplace: no command given; running the default scenario (%s; policies "
            "%s%s%s). See kvplace --help.\n", note, list,
            left_out[0] ? "; left out as slow: " : "", left_out);
    /* cli_args holds non-const pointers like argv; the run only reads them. */
    char *args[NDEFAULT_ARGS];
    memcpy(args, default_run_args, sizeof args);
    cli_args a = {(int)NDEFAULT_ARGS, args, "run"};
    return cli_cmd_run(&a, 1);
}

static void help_main(void)
{
    printf(
        "Usage: kvplace [COMMAND] [OPTIONS]\n"
        "\n"
        "Simulates where each token's KV cache should live during LLM decode, GPU HBM or\n"
        "off-package DRAM, and what throughput each placement policy buys.\n"
        "\n"
        "Commands:\n"
        "  run           run policies on a scenario and a trace (kvplace run --help)\n"
        "  trace gen     write a synthetic trace as .npy (kvplace trace --help)\n"
        "  trace info    summarise a .npy trace\n"
        "  presets       list the hardware and model presets\n"
        "  params        list every scenario parameter: unit, default, range, meaning\n"
        "  policies      list the placement policies and their parameters\n"
        "  study NAME    the study's experiments with plots (kvplace study --help)\n"
        "  sweep SPEC    many scenarios in parallel, resumable, sharded for Slurm\n"
        "                (kvplace sweep --help)\n"
        "  plot timeline FILE\n"
        "                draw a --timeline CSV: step time, HBM occupancy (kvplace plot --help)\n"
        "  compare A.json B.json ...\n"
        "                the same policies across runs, with ratios (kvplace compare --help)\n"
        "  help [CMD]    this help, or a command's\n"
        "\n"
        "With no command, kvplace runs a default scenario (GH200, Llama-3.1-8B, synthetic\n"
        "trace, sparsity 0.6, batch 32, prompt 4096, 256 steps) and says so on stderr.\n"
        "\n"
        "Options:\n"
        "  -h, --help    this help\n"
        "  --version     the version\n"
        "\n"
        "Example:\n"
        "  kvplace run --hw gh200-paper --model llama-3.1-8b --set sparsity=0.6 \\\n"
        "      --set batch=16 --policy static,lookahead:W=8:R=0.5 --json out.json\n"
        "\n"
        "Exit status: 0 ok, 1 bad input (a value, a file, an unknown name), 2 bad usage.\n");
}

typedef struct command {
    const char *name;
    int (*fn)(const cli_args *a);
} command;

static int cmd_run(const cli_args *a) { return cli_cmd_run(a, 0); }

static const command commands[] = {
    {"run", cmd_run},
    {"trace", cli_cmd_trace},
    {"presets", cli_cmd_presets},
    {"params", cli_cmd_params},
    {"policies", cli_cmd_policies},
    {"study", cli_cmd_study},
    {"sweep", cli_cmd_sweep},
    {"plot", cli_cmd_plot},
    {"compare", cli_cmd_compare},
};

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* `kvplace help [CMD]`: the command's own --help. */
static int cmd_help(int argc, char **argv)
{
    if (argc < 1) {
        help_main();
        return CLI_EXIT_OK;
    }
    const command *c = find_command(argv[0]);
    if (!c || argc > 1)
        return cli_usage(NULL, "help: unknown command \"%s\"", argv[argc > 1 ? 1 : 0]);
    char help_arg[] = "--help";
    char *args[] = {help_arg};
    cli_args a = {1, args, c->name};
    return c->fn(&a);
}

/* An engine pass allocates each layer's cursors, policy states and buffers (some 60 MB a
 * layer at 8 distinct sequences) and frees them at the layer's end.  glibc's defaults hand
 * blocks of more than 128 KiB back to the kernel (a mapping of their own, or the heap's top
 * trimmed), so each layer faulted its pages in again: at 128 steps some 15% of such a run's
 * CPU time, in the kernel (docs/PERF.md §44).  Kept in the heap instead: blocks up to
 * 32 MiB (glibc's largest threshold) from the heap, and up to 512 MiB of free heap kept. */
static void keep_freed_memory(void)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif
}

int main(int argc, char **argv)
{
    keep_freed_memory();
    if (argc < 2)
        return run_default();
    const char *cmd = argv[1];
    if (cli_is_help(cmd)) {
        help_main();
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("kvplace %s\n", KVP_VERSION);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "help") == 0)
        return cmd_help(argc - 2, argv + 2);
    const command *c = find_command(cmd);
    if (!c) {
        if (cmd[0] == '-')
            return cli_usage(NULL, "unknown option %s; options follow a command, as in "
                             "kvplace run %s", cmd, cmd);
        const char *names[sizeof commands / sizeof *commands + 1];
        for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
            names[i] = commands[i].name;
        names[sizeof commands / sizeof *commands] = "help";
        const char *s = kvp_closest_name(cmd, names, sizeof names / sizeof *names);
        if (s)
            return cli_usage(NULL, "unknown command \"%s\" (did you mean \"%s\"?)", cmd, s);
        return cli_usage(NULL, "unknown command \"%s\"", cmd);
    }
    cli_args a = {argc - 2, argv + 2, c->name};
    return c->fn(&a);
}
