/* A progress bar on stderr, redrawn in place with \r; silent when stderr is not a terminal
 * (a log file should not fill with bars) or with --quiet.  The engine calls it from the
 * calling thread only (kvp_run_options.progress), so no locking is needed. */
#include "cli.h"

#include <stdio.h>
#include <unistd.h>

#define BAR_WIDTH 30
#define PERCENT 100

void cli_progress_init(cli_progress *p, int quiet)
{
    p->on = !quiet && isatty(STDERR_FILENO);
    p->index = 0;
    p->count = 1;
    p->label = "";
    p->drawn = 0;
}

void cli_progress_fn(void *user, uint64_t done, uint64_t total)
{
    cli_progress *p = user;
    if (!p->on)
        return;
    if (done > total)
        done = total;
    unsigned fill = total ? (unsigned)(done * BAR_WIDTH / total) : BAR_WIDTH;
    unsigned pct = total ? (unsigned)(done * PERCENT / total) : PERCENT;
    char bar[BAR_WIDTH + 1];
    for (unsigned i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR_WIDTH] = 0;
    fprintf(stderr, "\rkvplace: [%u/%u] %-16.16s [%s] %3u%%", p->index + 1, p->count,
            p->label, bar, pct);
    fflush(stderr);
    p->drawn = 1;
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
