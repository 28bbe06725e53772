/* Long runs: --checkpoint FILE and --resume FILE (shared by `run` and `study`), and the
 * SIGINT/SIGTERM handlers that stop a run cleanly with its checkpoint saved
 * (docs/ROBUSTNESS.md). */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* The signal that asked the run to stop, or 0; set only by the handler. */
static volatile sig_atomic_t cancel_signal;

static void on_signal(int sig) { cancel_signal = sig; }

volatile sig_atomic_t *cli_cancel_install(void)
{
    static const int sigs[] = {SIGINT, SIGTERM};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* A second signal while saving is the same request; the first one is enough. */
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        sigaction(sigs[i], &sa, NULL);
    return &cancel_signal;
}

int cli_ckpt_option(cli_ckpt *c, const cli_args *a, int *i)
{
    int m;
    if ((m = cli_opt_value(a, i, "--checkpoint", NULL, &c->checkpoint)) != 0 ||
        (m = cli_opt_value(a, i, "--resume", NULL, &c->resume)) != 0)
        return m;
    return 0;
}

int cli_ckpt_match(const cli_ckpt *c, const kvp_scenario *sc, const kvp_trace *tr, int quiet)
{
    kvp_error err = {0};
    if (!c->ck || !c->resume)
        return 0;
    if (kvp_checkpoint_match(c->ck, sc, tr, &err) >= 0)
        return 0;
    return quiet ? CLI_EXIT_INPUT : cli_error("--resume %s: %s", c->resume, err.msg);
}

int cli_ckpt_open(cli_ckpt *c, const kvp_scenario *sc, const kvp_trace *tr)
{
    kvp_error err = {0};
    struct stat st;
    c->ck = NULL;
    if (!c->checkpoint && !c->resume)
        return 0;
    /* Saved evaluations can be hours of work: never overwrite them unless resuming. */
    if (c->checkpoint && !c->resume && stat(c->checkpoint, &st) == 0)
        return cli_error("--checkpoint %s: the file exists; continue it with --resume %s, or "
                         "remove it", c->checkpoint, c->checkpoint);
    /* Read and checked first, so that nothing is written for a file refused. */
    if (c->resume) {
        if (kvp_checkpoint_open(&c->ck, NULL, c->resume, &err) < 0)
            return cli_error("%s", err.msg);
        int rc = sc && tr ? cli_ckpt_match(c, sc, tr, 0) : 0;
        cli_ckpt_close(c);
        if (rc != 0)
            return rc;
    }
    /* --resume alone keeps saving to the file it resumes. */
    const char *save = c->checkpoint ? c->checkpoint : c->resume;
    if (kvp_checkpoint_open(&c->ck, save, c->resume, &err) < 0)
        return cli_error("%s", err.msg);
    return 0;
}

void cli_ckpt_close(cli_ckpt *c)
{
    kvp_checkpoint_free(c->ck);
    c->ck = NULL;
}

int cli_run_failed(const kvp_error *err, const cli_ckpt *c)
{
    if (err->code != KVP_EINTR)
        return cli_error("%s", err->msg);
    int sig = cancel_signal ? (int)cancel_signal : SIGINT;
    const char *path = c ? kvp_checkpoint_save_path(c->ck) : NULL;
    if (path)
        cli_error("interrupted; %llu evaluations saved to %s; continue with --resume %s",
                  (unsigned long long)kvp_checkpoint_count(c->ck), path, path);
    else
        cli_error("interrupted");
    return CLI_EXIT_SIGNAL + sig;
}
