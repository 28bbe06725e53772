/*
 * Internal to `kvplace sweep`: cli/sweep_spec.c reads a sweep spec (INI) and expands it into
 * its points; cli/sweep.c runs the points in worker processes, writes one file per point, and
 * merges them.  docs/SWEEP.md is the user's guide and the reference of the formats.
 */
#ifndef KVP_CLI_SWEEP_H
#define KVP_CLI_SWEEP_H

#include "cli.h"

#define SWEEP_MAX_POLICIES 32
#define SWEEP_MAX_POINTS 100000 /* a sanity limit: a typo in a range is refused, not run */
#define SWEEP_ID_TEXT 48
#define SWEEP_HASH_TEXT 17 /* 16 hex digits */
/* trace = synthetic-heads: the synthetic trace as one stream per KV head (kvplace run --heads) */
#define SWEEP_TRACE_HEADS "synthetic-heads"

/* One key of [base], [vary] or a [zip...] section: hw, model, trace, or a parameter. */
typedef struct sweep_var {
    char *name;
    char **values; /* one in [base] */
    size_t n;
    int line;
} sweep_var;

/* An axis of the cross product: one [vary] key, or every key of one [zip...] section. */
typedef struct sweep_axis {
    sweep_var **vars;
    size_t nvars;
    size_t n; /* values along the axis */
} sweep_axis;

typedef struct sweep_point {
    size_t index;
    char id[SWEEP_ID_TEXT]; /* "0007-3fa9c2d1e0b4": index and a hash of the settings */
    kvp_scenario sc;
    const char *trace;  /* "synthetic", SWEEP_TRACE_HEADS, or a file as the spec names it */
    char *trace_path;   /* the file resolved against the spec's directory; NULL: synthetic */
    char *settings;     /* the varied values, "sparsity=0.4 batch=2", for messages */
} sweep_point;

typedef struct sweep_spec {
    char *path;
    char *dir; /* the spec's directory: relative trace and config files are found there */
    char *policies;
    sweep_var *vars; /* every key, in file order */
    size_t nvars, capvars;
    sweep_axis *axes;
    size_t naxes;
    kvp_policy_spec specs[SWEEP_MAX_POLICIES];
    size_t nspecs;
    sweep_point *pts;
    size_t npts;
    char hash[SWEEP_HASH_TEXT]; /* of the version, the policies and every point's settings */
} sweep_spec;

/* Reads and expands a spec: every point's scenario built and validated, trace files checked
 * for reading.  sets[0..nsets-1] ("name=value", the command line's --set) replace or add
 * [base] settings (a varied key is refused); policies (if not NULL) replaces [sweep]'s.
 * Returns 0, or an exit status after printing the one line. */
int sweep_spec_load(sweep_spec *s, const char *path, const char *const *sets, size_t nsets,
                    const char *policies);
void sweep_spec_free(sweep_spec *s);

/* Fills the point ids and the spec's hash from the points (index, scenario, trace) and the
 * policies: sweep_spec_load does it; a caller that builds the points itself (kvplace study)
 * calls it.  Returns 0, or an exit status after printing the one line. */
int sweep_spec_seal(sweep_spec *s);

/* How a sweep runs: --jobs, --threads, --shard K/N (shard: the text, for messages). */
typedef struct sweep_run_opts {
    unsigned jobs, threads;
    size_t shard_k, shard_n;
    const char *shard;
    int quiet;
    /* Each point's run options (an sa checkpoint, progress); NULL: the defaults.  threads
     * and cancel are the sweep's. */
    const kvp_run_options *ro;
    int in_process; /* 1: the points run in this process, one after the other */
} sweep_run_opts;

/* Parses the options (NULL: the default) into o; returns 0, or an exit status (printed). */
int sweep_run_parse(const char *jobs, const char *threads, const char *shard,
                    sweep_run_opts *o);
/* Runs the points of the shard not yet done into dir (made if missing; refused if it holds
 * another spec's points); spec_copy (or NULL) is copied to dir/spec.ini.  Does not merge. */
int sweep_run(const sweep_spec *s, const char *dir, const char *spec_copy,
              const sweep_run_opts *o);
/* kvplace sweep merge DIR [--partial]. */
int sweep_merge(const char *dir, int partial, int quiet);

/* FNV-1a, 64 bits: ids and the spec's hash (not a cryptographic hash: it tells specs apart,
 * it does not defend against forgery). */
uint64_t sweep_hash(uint64_t h, const char *text);
#define SWEEP_HASH_INIT 0xcbf29ce484222325ULL

#endif
