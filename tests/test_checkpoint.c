/*
 * Checkpoints of the sa search (src/report/checkpoint.c, docs/ROBUSTNESS.md): a resumed search takes
 * the uninterrupted search's path, event for event, and gives its result byte for byte,
 * without re-running a saved evaluation; the budget counts saved points when the search
 * reaches them; every corrupt or mismatched file is refused.
 */
#include "kvplace.h"
#include "support.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/kvp_test_checkpoint.XXXXXX";

/* A scenario whose KV does not fit HBM, so that (W, R) matter: tok_bytes = 2*8*128*2*64 =
 * 262144 B; budget 100e6 B / (2 layers * 262144) = 190 slots per layer for a 300-token
 * prompt. */
static void scenario(kvp_scenario *sc, const char *sparsity)
{
    kvp_scenario_default(sc);
    const char *set[] = {"layers=2",          "batch=64",  "weight_bytes=1000000000",
                         "hbm_capacity=1100000000", "prompt=300", "steps=60"};
    for (size_t i = 0; i < sizeof set / sizeof *set; i++)
        CHECK_OK(kvp_param_assign(sc, set[i], &err), &err);
    CHECK_OK(kvp_param_set(sc, "sparsity", sparsity, &err), &err);
}

static kvp_trace *trace(const kvp_scenario *sc)
{
    kvp_synth_params sp;
    kvp_trace *t = NULL;
    kvp_synth_default(&sp, sc);
    REQUIRE_OK(kvp_trace_synthetic(&t, &sp, &err), &err);
    return t;
}

/* The search's trail: every event, to compare paths. */
#define TRAIL_MAX 512
typedef struct trail {
    kvp_sa_event ev[TRAIL_MAX];
    size_t n;
    volatile sig_atomic_t *trip; /* set at the first event, if not NULL */
} trail;

static void log_fn(void *user, const kvp_sa_event *ev)
{
    trail *t = user;
    if (t->n < TRAIL_MAX)
        t->ev[t->n++] = *ev;
    if (t->trip)
        *t->trip = 1;
}

static int same_trail(const trail *a, const trail *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++) {
        const kvp_sa_event *x = &a->ev[i], *y = &b->ev[i];
        if (x->level != y->level || x->move != y->move || x->W != y->W || x->R != y->R ||
            x->time_s != y->time_s || x->accepted != y->accepted ||
            x->best_time_s != y->best_time_s || x->evaluations != y->evaluations ||
            x->temperature != y->temperature)
            return 0;
    }
    return 1;
}

static int same_result(const kvp_result *a, const kvp_result *b)
{
    return same_report(a, b) && strcmp(a->policy, b->policy) == 0 && a->slots == b->slots &&
           a->block_tokens == b->block_tokens && a->steps == b->steps &&
           a->sa_evaluations == b->sa_evaluations;
}

/* Runs sa with spec on (sc, t); ck and cancel may be NULL.  With cancel, the run is asked to
 * stop as soon as the search has begun (its first event, after the first evaluation): from
 * then on only saved points can be used, and any evaluation it would have to run fails with
 * KVP_EINTR.  (Not before: the search may first build a trace cache, which stops too.)
 * Returns kvp_run's code. */
static int run_sa(const kvp_scenario *sc, const kvp_trace *t, const char *spec,
                  kvp_checkpoint *ck, volatile sig_atomic_t *cancel, kvp_result *r, trail *tl)
{
    kvp_policy_spec ps;
    kvp_run_options ro;
    CHECK_OK(kvp_policy_parse(&ps, spec, &err), &err);
    kvp_run_options_default(&ro);
    ro.checkpoint = ck;
    ro.cancel = cancel;
    ro.sa_log = log_fn;
    ro.sa_log_user = tl;
    tl->n = 0;
    tl->trip = cancel;
    if (cancel)
        *cancel = 0;
    memset(r, 0, sizeof *r);
    return kvp_run(sc, t, &ps, &ro, r, &err);
}

static void path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

static char *slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    char *s = NULL;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = 0;
    *len = (size_t)n;
    fclose(f);
    return s;
}

static void spit(const char *p, const char *s, size_t len)
{
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK(fwrite(s, 1, len, f) == len);
        fclose(f);
    }
}

static trail t_full, t_other;

/* Interrupted, then resumed: the same trail and result as uninterrupted, and a saved point
 * is never run again. */
static void test_resume(void)
{
    kvp_scenario sc;
    scenario(&sc, "0.6");
    kvp_trace *t = trace(&sc);
    char ck_path[256];
    path(ck_path, sizeof ck_path, "ck");
    kvp_result full, part, resumed;
    volatile sig_atomic_t stop = 0;

    CHECK_OK(run_sa(&sc, t, "sa:budget=12:moves=10", NULL, NULL, &full, &t_full), &err);
    /* budget-bound (unbounded, this search stops after 13): a real test of the count */
    CHECK_EQ_INT(full.sa_evaluations, 12);

    /* An "interruption" after 5 evaluations: the same search with budget 5 saves exactly
     * the first 5 points of the budget-12 search (the paths agree until the budget). */
    kvp_checkpoint *ck = NULL;
    REQUIRE_OK(kvp_checkpoint_open(&ck, ck_path, NULL, &err), &err);
    CHECK_OK(run_sa(&sc, t, "sa:budget=5:moves=10", ck, NULL, &part, &t_other), &err);
    CHECK_EQ_U64(kvp_checkpoint_count(ck), 5);
    kvp_checkpoint_free(ck);

    /* Resumed and asked to stop: it replays the 5 saved points, then stops at the first
     * one it would have to run.  Level 0's points are run in one pass before the search's
     * first event (src/policy/sa.c, run_level0), so those of them not saved are run before
     * the stop is asked, and saved as the search reaches them: the checkpoint then holds
     * every point of the full search's level 0 (its trail's evaluations there). */
    uint32_t level0 = 0;
    for (size_t i = 0; i < t_full.n; i++)
        if (t_full.ev[i].level == 0 && t_full.ev[i].evaluations > level0)
            level0 = t_full.ev[i].evaluations;
    CHECK(level0 > 5 && level0 < 12); /* the test below needs some of level 0 unsaved */
    REQUIRE_OK(kvp_checkpoint_open(&ck, ck_path, ck_path, &err), &err);
    CHECK_EQ_U64(kvp_checkpoint_count(ck), 5);
    CHECK_FAILS(run_sa(&sc, t, "sa:budget=12:moves=10", ck, &stop, &resumed, &t_other), KVP_EINTR,
                &err, "interrupted");
    CHECK_EQ_U64(kvp_checkpoint_count(ck), level0);
    /* and again without the flag: the uninterrupted trail, event for event */
    CHECK_OK(run_sa(&sc, t, "sa:budget=12:moves=10", ck, NULL, &resumed, &t_other), &err);
    CHECK(same_result(&full, &resumed));
    CHECK(same_trail(&t_full, &t_other));
    CHECK_EQ_U64(kvp_checkpoint_count(ck), 12);
    kvp_checkpoint_free(ck);

    /* Everything saved: asked to stop, it still completes, so nothing was run again. */
    REQUIRE_OK(kvp_checkpoint_open(&ck, NULL, ck_path, &err), &err);
    CHECK_OK(run_sa(&sc, t, "sa:budget=12:moves=10", ck, &stop, &resumed, &t_other), &err);
    CHECK(same_result(&full, &resumed));
    CHECK(same_trail(&t_full, &t_other));

    /* A smaller budget over the 12 saved points stops where a fresh budget-7 search does:
     * saved points count only when reached. */
    kvp_result fresh7, from_ck7;
    trail t7;
    CHECK_OK(run_sa(&sc, t, "sa:budget=7:moves=10", NULL, NULL, &fresh7, &t7), &err);
    CHECK_OK(run_sa(&sc, t, "sa:budget=7:moves=10", ck, &stop, &from_ck7, &t_other), &err);
    CHECK_EQ_INT(from_ck7.sa_evaluations, 7);
    CHECK(same_result(&fresh7, &from_ck7));
    CHECK(same_trail(&t7, &t_other));

    /* Matching: the same scenario matches; another sparsity does not, and says so. */
    CHECK_EQ_INT(kvp_checkpoint_match(ck, &sc, t, &err), 1);
    kvp_scenario other;
    scenario(&other, "0.5");
    CHECK_FAILS(kvp_checkpoint_match(ck, &other, t, &err), KVP_EINVAL, &err, "sparsity=0.5");
    kvp_checkpoint_free(ck);
    kvp_checkpoint *empty = NULL;
    REQUIRE_OK(kvp_checkpoint_open(&empty, NULL, NULL, &err), &err);
    CHECK_EQ_INT(kvp_checkpoint_match(empty, &other, t, &err), 0);
    kvp_checkpoint_free(empty);

    /* Two scenarios in one file: each run keeps its own evaluations. */
    kvp_trace *t2 = trace(&other);
    kvp_result o1, o2;
    REQUIRE_OK(kvp_checkpoint_open(&ck, ck_path, ck_path, &err), &err);
    CHECK_OK(run_sa(&other, t2, "sa:budget=3:moves=10", ck, NULL, &o1, &t_other), &err);
    CHECK_EQ_U64(kvp_checkpoint_count(ck), 15);
    kvp_checkpoint_free(ck);
    REQUIRE_OK(kvp_checkpoint_open(&ck, NULL, ck_path, &err), &err);
    CHECK_EQ_INT(kvp_checkpoint_match(ck, &other, t2, &err), 1);
    CHECK_OK(run_sa(&other, t2, "sa:budget=3:moves=10", ck, &stop, &o2, &t_other), &err);
    CHECK(same_result(&o1, &o2));
    CHECK_OK(run_sa(&sc, t, "sa:budget=12:moves=10", ck, &stop, &resumed, &t_other), &err);
    CHECK(same_result(&full, &resumed));
    kvp_checkpoint_free(ck);

    /* The engine stops between steps too. */
    kvp_policy_spec ps;
    kvp_run_options ro;
    kvp_result r;
    CHECK_OK(kvp_policy_parse(&ps, "static", &err), &err);
    kvp_run_options_default(&ro);
    stop = 1;
    ro.cancel = &stop;
    CHECK_FAILS(kvp_run(&sc, t, &ps, &ro, &r, &err), KVP_EINTR, &err, "interrupted");
    kvp_trace_free(t);
    kvp_trace_free(t2);
}

/* The checkpoint file that test_resume leaves behind, written here when the refusals run
 * alone (by name): a short search that saves a few points. */
static void ensure_checkpoint(const char *p)
{
    if (access(p, F_OK) == 0)
        return;
    kvp_scenario sc;
    scenario(&sc, "0.6");
    kvp_trace *t = trace(&sc);
    kvp_checkpoint *ck = NULL;
    kvp_result r;
    static trail tl;
    REQUIRE_OK(kvp_checkpoint_open(&ck, p, NULL, &err), &err);
    CHECK_OK(run_sa(&sc, t, "sa:budget=3:moves=10", ck, NULL, &r, &tl), &err);
    kvp_checkpoint_free(ck);
    kvp_trace_free(t);
}

/* Damaged files: every one refused with KVP_EFORMAT (or KVP_EIO), naming the file. */
static void test_refusals(void)
{
    char good[256], bad[256];
    path(good, sizeof good, "ck");
    path(bad, sizeof bad, "bad");
    ensure_checkpoint(good);
    size_t len;
    char *text = slurp(good, &len);
    REQUIRE(text != NULL && len > 100);
    kvp_checkpoint *ck = NULL;
    char *copy = malloc(len + 64);

    /* every single byte flipped in a record line is caught by its checksum (or parse) */
    char *rec = strstr(text, "\nrec ");
    CHECK(rec != NULL);
    size_t at = (size_t)(rec - text) + 1, end = at;
    while (end < len && text[end] != '\n')
        end++;
    size_t refused = 0;
    for (size_t i = at; i < end; i++) {
        memcpy(copy, text, len);
        copy[i] ^= 0x01;
        spit(bad, copy, len);
        int rc = kvp_checkpoint_open(&ck, NULL, bad, &err);
        refused += rc == KVP_EFORMAT && strstr(err.msg, bad) != NULL;
        kvp_checkpoint_free(ck);
        ck = NULL;
    }
    CHECK_EQ_U64(refused, end - at);

    static const struct {
        const char *what, *find, *replace, *needle;
    } edits[] = {
        {"bad magic", "kvplace-checkpoint", "kvplace-checkpoinX", "bad magic"},
        {"checksum of the flags", "flags 0 ", "flags 1 ", "checksum"},
    };
    for (size_t k = 0; k < sizeof edits / sizeof *edits; k++) {
        memcpy(copy, text, len + 1);
        char *p = strstr(copy, edits[k].find);
        CHECK(p != NULL);
        if (p)
            memcpy(p, edits[k].replace, strlen(edits[k].replace));
        spit(bad, copy, len);
        CHECK_FAILS(kvp_checkpoint_open(&ck, NULL, bad, &err), KVP_EFORMAT, &err,
                    edits[k].needle);
    }

    /* cut short: the end line missing, or the last line without its newline */
    char *last = text + len - 1;
    while (last > text && last[-1] != '\n')
        last--;
    spit(bad, text, (size_t)(last - text));
    CHECK_FAILS(kvp_checkpoint_open(&ck, NULL, bad, &err), KVP_EFORMAT, &err, "cut short");
    spit(bad, text, len - 1);
    CHECK_FAILS(kvp_checkpoint_open(&ck, NULL, bad, &err), KVP_EFORMAT, &err, "cut short");
    /* text after the end */
    memcpy(copy, text, len);
    memcpy(copy + len, text + (last - text), len - (size_t)(last - text));
    spit(bad, copy, len + (len - (size_t)(last - text)));
    CHECK_FAILS(kvp_checkpoint_open(&ck, NULL, bad, &err), KVP_EFORMAT, &err, "after the end");
    /* a record line dropped whole (checksums intact): the counts catch it */
    memcpy(copy, text, len);
    memmove(copy + at, copy + end + 1, len - end - 1);
    spit(bad, copy, len - (end + 1 - at));
    CHECK_FAILS(kvp_checkpoint_open(&ck, NULL, bad, &err), KVP_EFORMAT, &err, bad);

    /* lines with valid checksums but wrong content: version, flags, duplicate record */
    /* checksums: the CRC-32 of the text before them, as from
     * python3 -c "import zlib; print(hex(zlib.crc32(b'flags 1')))" */
    static const char *const heads[] = {
        "kvplace-checkpoint 2 dea242a2\n",
        "kvplace-checkpoint 1 47ab1318\nflags 1 9a720a56\n",
    };
    static const char *const needles[] = {"version 2", "unknown flags"};
    for (size_t k = 0; k < 2; k++) {
        spit(bad, heads[k], strlen(heads[k]));
        CHECK_FAILS(kvp_checkpoint_open(&ck, NULL, bad, &err), KVP_EFORMAT, &err, needles[k]);
    }

    spit(bad, "", 0);
    CHECK_FAILS(kvp_checkpoint_open(&ck, NULL, bad, &err), KVP_EFORMAT, &err, "empty");
    CHECK_FAILS(kvp_checkpoint_open(&ck, NULL, dir, &err), KVP_EIO, &err, "directory");
    char none[256];
    path(none, sizeof none, "none");
    CHECK_FAILS(kvp_checkpoint_open(&ck, NULL, none, &err), KVP_EIO, &err, "none");
    /* a save path that cannot be written fails at once */
    path(none, sizeof none, "nodir/ck");
    CHECK_FAILS(kvp_checkpoint_open(&ck, none, NULL, &err), KVP_EIO, &err, "nodir/ck");
    CHECK(ck == NULL);
    free(copy);
    free(text);
}

int main(int argc, char **argv)
{
    static const check_test tests[] = {
        {"resume", test_resume},
        {"refusals", test_refusals},
    };
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    int rc = check_main(argc, argv, tests, sizeof tests / sizeof *tests);
    char p[256];
    const char *names[] = {"ck", "bad"};
    for (size_t i = 0; i < 2; i++) {
        path(p, sizeof p, names[i]);
        unlink(p);
    }
    rmdir(dir);
    return rc;
}
