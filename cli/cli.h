/* The command-line program's internal interface: commands, option parsing, output helpers.
 * Only cli/ sees argv or prints for people; everything it computes comes from the library. */
#ifndef KVP_CLI_H
#define KVP_CLI_H

#include "kvplace.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/* Exit statuses. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_INPUT 1 /* bad input: a value, a file, an unknown preset or policy */
#define CLI_EXIT_USAGE 2 /* a malformed command line */
#define CLI_EXIT_SIGNAL 128 /* plus the signal's number: interrupted (130 SIGINT, 143 SIGTERM) */

/* Prints "kvplace: <message>" on stderr and returns CLI_EXIT_INPUT. */
int cli_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* Prints "kvplace: <message> (see kvplace <cmd> --help)" and returns CLI_EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The arguments of one command: argv[first..argc-1] are its options. */
typedef struct cli_args {
    int argc;
    char **argv;
    const char *cmd; /* "run", "trace gen", ...: for usage hints */
} cli_args;

int cli_is_help(const char *arg);
/* Matches argv[*i] against an option that takes a value ("--name VALUE", "--name=VALUE",
 * "-s VALUE"; shrt may be NULL).  Returns 1 with *val set and *i on the last argument used,
 * 0 if argv[*i] is another option, or CLI_EXIT_USAGE (negated) after printing the error. */
int cli_opt_value(const cli_args *a, int *i, const char *lng, const char *shrt,
                  const char **val);
/* Matches a flag ("--name" or "-s"); returns 1, 0, or -CLI_EXIT_USAGE ("--name=x"). */
int cli_opt_flag(const cli_args *a, int i, const char *lng, const char *shrt);
/* The usage error for an argument no option matched. */
int cli_unknown_arg(const cli_args *a, const char *arg);

/* Scenario options shared by `run` and `trace`: --hw, --model, --config, --set. */
typedef enum cli_scn_kind { CLI_SCN_HW, CLI_SCN_MODEL, CLI_SCN_CONFIG, CLI_SCN_SET } cli_scn_kind;

typedef struct cli_scn_item {
    cli_scn_kind kind;
    const char *text;
} cli_scn_item;

typedef struct cli_scn {
    cli_scn_item *item; /* at most argc entries */
    size_t n;
    const char *synthetic; /* --synthetic VARIATION, or NULL */
} cli_scn;

int cli_scn_init(cli_scn *s, int argc);
void cli_scn_free(cli_scn *s);
/* Consumes a scenario option at argv[*i]: 1 if it was one, 0 if not, or -CLI_EXIT_USAGE. */
int cli_scn_option(cli_scn *s, const cli_args *a, int *i);
/* 1 if a --set names the parameter `name` (by its canonical name). */
int cli_scn_sets(const cli_scn *s, const char *name);
/* Defaults, then --hw/--model/--config in command-line order, then every --set in order,
 * then --synthetic's variation; then validation.  Returns 0 or an exit status (printed). */
int cli_scn_build(const cli_scn *s, kvp_scenario *sc);
/* The same over sc as it stands, without the defaults first (study applies its own). */
int cli_scn_apply(const cli_scn *s, kvp_scenario *sc);

/* A file a command reads or writes, with the option that names it ("--json"). */
typedef struct cli_file {
    const char *path; /* NULL: not given */
    const char *what;
} cli_file;
/* Refuses (a usage error, printed) an output that is also an input, two outputs naming one
 * file, and two outputs to stdout; run before anything is written.  Returns 0 or the status. */
int cli_check_files(const char *cmd, const cli_file *in, size_t nin, const cli_file *out,
                    size_t nout);
/* The files among --hw, --model and --config (at most max); returns their count. */
size_t cli_scn_inputs(const cli_scn *s, cli_file *in, size_t max);

/* The [run] section of a config file (cli/experiment.c): key names and the option each
 * fills when the command line left it empty. */
#define CLI_RUN_KEYS_MAX 16
typedef struct cli_run_key {
    const char *name;  /* "policy", "json", ... */
    const char **slot; /* the option's value */
} cli_run_key;
typedef struct cli_run_keys {
    cli_run_key key[CLI_RUN_KEYS_MAX];
    size_t n;
    char *held[CLI_RUN_KEYS_MAX * 4]; /* copies of the values, freed by cli_run_keys_free */
    size_t nheld;
} cli_run_keys;
/* Fills the empty options from path's [run] section; 0 or an exit status (printed). */
int cli_run_keys_load(cli_run_keys *k, const char *path);
void cli_run_keys_free(cli_run_keys *k);

/* Long runs (cli/longrun.c): --checkpoint FILE and --resume FILE, and SIGINT/SIGTERM.  A
 * command that runs sa takes them as `run` does:
 *   parse:   cli_ckpt_option(&c, a, &i) beside the other options (1, 0 or -CLI_EXIT_USAGE);
 *   before:  once the scenario and trace are known, cli_ckpt_open(&c, &sc, tr);
 *            ro.checkpoint = c.ck; ro.cancel = cli_cancel_install();
 *            (study, with many scenarios: cli_ckpt_open(&c, NULL, NULL), then
 *            cli_ckpt_match for each and refuse only if none matches)
 *   failure: return cli_run_failed(&err, &c) for any kvp_run error (prints the one line;
 *            KVP_EINTR gives 128 + the signal);
 *   always:  cli_ckpt_close(&c). */
typedef struct cli_ckpt {
    const char *checkpoint, *resume; /* the options' values, or NULL */
    kvp_checkpoint *ck;              /* opened by cli_ckpt_open; NULL without the options */
} cli_ckpt;

int cli_ckpt_option(cli_ckpt *c, const cli_args *a, int *i);
/* Opens the checkpoint, if either option was given: refuses --checkpoint FILE that exists
 * without --resume; reads --resume FILE, refusing a corrupt one and (if sc and tr are not
 * NULL) one saved for another scenario or trace; then writes the save file (--resume alone
 * saves to the file it resumes).  Returns 0 or an exit status (printed). */
int cli_ckpt_open(cli_ckpt *c, const kvp_scenario *sc, const kvp_trace *tr);
/* With --resume: 0 if the checkpoint holds this scenario and trace, or nothing; else the
 * exit status (printed, unless quiet). */
int cli_ckpt_match(const cli_ckpt *c, const kvp_scenario *sc, const kvp_trace *tr, int quiet);
void cli_ckpt_close(cli_ckpt *c);
/* Installs SIGINT and SIGTERM handlers that set the returned flag to the signal's number. */
volatile sig_atomic_t *cli_cancel_install(void);
/* Prints the one line for a failed run and returns its exit status: for KVP_EINTR,
 * "interrupted; N evaluations saved to FILE; continue with --resume FILE" and 128 + the
 * signal; otherwise err's message and CLI_EXIT_INPUT.  c may be NULL. */
int cli_run_failed(const kvp_error *err, const cli_ckpt *c);

/* Removes an output written by a run that then failed, if it is a regular file (not "-", a
 * device, a FIFO or a link). */
void cli_remove_output(const char *path);

/* Gives a PDF that cairo made a fixed creation date, so that it is reproducible; 0 or -1. */
int cli_pdf_fix_date(const char *path);

/* "1.23 GB": decimal units, three significant digits. */
void cli_format_bytes(char *buf, size_t len, double bytes);

/* Commands; each returns an exit status. */
/* default_scenario: the run of `kvplace` alone, whose note already named the policies. */
int cli_cmd_run(const cli_args *a, int default_scenario);
int cli_cmd_trace(const cli_args *a);
int cli_cmd_params(const cli_args *a);
int cli_cmd_presets(const cli_args *a);
int cli_cmd_policies(const cli_args *a);
int cli_cmd_study(const cli_args *a);
int cli_cmd_sweep(const cli_args *a);
/* The results of one point of the sweep in dir (kvplace study): res[0..n-1] for the specs,
 * from the point whose scenario is sc and whose trace is trace ("synthetic", or a file as
 * named).  0, -1 if no point matches, or an exit status (printed). */
int cli_sweep_results(const char *dir, const kvp_scenario *sc, const char *trace,
                      const kvp_policy_spec *specs, size_t n, kvp_result *res);
int cli_cmd_plot(const cli_args *a);
int cli_cmd_compare(const cli_args *a);

void cli_help_run(void);
void cli_help_trace(void);
void cli_help_study(void);
void cli_help_sweep(void);
/* Every parameter, grouped, with unit, default, range and doc (kvp_params()). */
void cli_print_params(void);
void cli_print_policies(void);

/* The default policy list: every registered policy but the slow ones.  Writes the list
 * ("unlimited,static,...") and the ones left out ("sa" or "") into the buffers. */
void cli_default_policies(char *list, size_t list_len, char *left_out, size_t left_len);

/* Progress on stderr (cli/progress.c): a bar redrawn in place with an ETA on a terminal, a
 * plain line every 30 s or so elsewhere, nothing with --quiet. */
typedef struct cli_progress {
    int on, tty;
    unsigned index, count; /* this phase is index+1 of count */
    const char *label;
    int drawn;
    double t0, last_line, phase_start; /* seconds, monotonic */
    uint64_t last_done;
    unsigned last_index;
    const char *last_label;
} cli_progress;

void cli_progress_init(cli_progress *p, int quiet);
void cli_progress_fn(void *user, uint64_t done, uint64_t total);
/* Erases the bar, if drawn, so that later messages start on a clean line. */
void cli_progress_clear(cli_progress *p);

#endif
