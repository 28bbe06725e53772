/* Progress on stderr.  On a terminal: a bar redrawn in place with \r,
 *   kvplace: [2/3] sa evaluation 7/40  ########------------  41%  ETA 1m20s
 * Elsewhere (a log file, a pipe): one plain line every PLAIN_EVERY seconds, the first after
 * as long, so that short runs print nothing and long ones show they are alive.  Nothing with
 * --quiet.  The engine calls it from the calling thread only (kvp_run_options.progress), so
 * no locking is needed. */
#include "cli.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define BAR_WIDTH 20
#define PERCENT 100
#ifndef PLAIN_EVERY
#define PLAIN_EVERY 30.0 /* seconds between two lines when stderr is not a terminal */
#endif
#define ETA_AFTER 1.0    /* seconds of a phase before its rate is trusted for an ETA */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cli_progress_init(cli_progress *p, int quiet)
{
    p->on = !quiet;
    p->tty = isatty(STDERR_FILENO);
    p->index = 0;
    p->count = 1;
    p->label = "";
    p->drawn = 0;
    p->t0 = p->last_line = p->phase_start = now_s();
    p->last_done = 0;
    p->last_index = 0;
    p->last_label = NULL;
}

/* "45s", "1m20s", "2h05m". */
static void format_eta(char *buf, size_t len, double s)
{
    unsigned long t = (unsigned long)(s + 0.5);
    if (t < 60)
        snprintf(buf, len, "%lus", t);
    else if (t < 3600)
        snprintf(buf, len, "%lum%02lus", t / 60, t % 60);
    else
        snprintf(buf, len, "%luh%02lum", t / 3600, t / 60 % 60);
}

void cli_progress_fn(void *user, uint64_t done, uint64_t total)
{
    cli_progress *p = user;
    if (!p->on)
        return;
    double now = now_s();
    if (done > total)
        done = total;
    /* A new phase (a new pass, point or label) restarts the clock of the ETA. */
    if (done < p->last_done || p->index != p->last_index || p->label != p->last_label) {
        p->phase_start = now;
        p->last_index = p->index;
        p->last_label = p->label;
    }
    p->last_done = done;
    unsigned pct = total ? (unsigned)(done * PERCENT / total) : PERCENT;
    char eta[32] = "";
    double el = now - p->phase_start;
    if (done > 0 && done < total && el >= ETA_AFTER) {
        char t[24];
        format_eta(t, sizeof t, el * (double)(total - done) / (double)done);
        snprintf(eta, sizeof eta, "ETA %s", t);
    }
    if (p->tty) {
        unsigned fill = total ? (unsigned)(done * BAR_WIDTH / total) : BAR_WIDTH;
        char bar[BAR_WIDTH + 1];
        for (unsigned i = 0; i < BAR_WIDTH; i++)
            bar[i] = i < fill ? '#' : '-';
        bar[BAR_WIDTH] = 0;
        fprintf(stderr, "\rkvplace: [%u/%u] %-24s %s %3u%%  %-12s\033[K", p->index + 1, p->count,
                p->label, bar, pct, eta);
        fflush(stderr);
        p->drawn = 1;
        return;
    }
    if (now - p->last_line < PLAIN_EVERY)
        return;
    p->last_line = now;
    char run[24];
    format_eta(run, sizeof run, now - p->t0);
    fprintf(stderr, "kvplace: [%u/%u] %s %u%%%s%s (running %s)\n", p->index + 1, p->count,
            p->label, pct, eta[0] ? ", " : "", eta, run);
    fflush(stderr);
}

void cli_progress_clear(cli_progress *p)
{
    if (!p->drawn)
        return;
    /* "\033[K" erases to the end of the line on every terminal we expect (VT100 and on). */
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->drawn = 0;
}
