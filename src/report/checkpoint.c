/*
 * Checkpoints of long runs: the sa search's finished evaluations, saved as they finish so
 * that an interrupted search can resume (docs/ROBUSTNESS.md has the format and the reasons).
 *
 * The file is text, one record per line, each line ending in the CRC-32 of the rest of it:
 *
 *     kvplace-checkpoint 1 <crc>            magic and format version
 *     flags 0 <crc>                         no flags are defined; any other value is refused
 *     run <items> <records> <crc>           one block per scenario and trace:
 *     fp <key>=<value> <crc>                  its fingerprint, <items> lines
 *     rec <W> <r> <field>... <crc>            its evaluations, <records> lines
 *     end <runs> <records> <crc>            totals; a file without it was cut short
 *
 * Doubles are their 64 IEEE bits in hex, integers decimal, strings and fingerprint values
 * escaped (%XX for '%', blanks and bytes outside printable ASCII) after a leading '='.  The
 * whole file is rewritten to a temporary name, synced and renamed over the old one after
 * every evaluation, so it is never half-written; hence anything that does not parse, or
 * fails a checksum, is corruption and is refused, never repaired or skipped.
 */
#include "report/checkpoint.h"
#include "base/error.h"

#include "trace/trace.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CK_MAGIC "kvplace-checkpoint"
#define CK_VERSION 1u
#define CK_FLAGS 0u    /* flags this version understands: none */
#define CK_R_STEPS 10u /* R on sa's 0.1 grid: r / 10 */
#define CK_CRC_HEX 8   /* digits of a line's CRC-32 */
#define CK_ITEM_MAX 1024 /* longest fingerprint item, escaped (trace names are < 256 bytes) */
#define CK_MAX_TOKENS 160 /* tokens of the longest line (a record: 3 + 25 + 2 + 88) */
#define CK_MAX_ITEMS 256 /* fingerprint items of a run (this version writes 24) */
#define CK_FILE_MODE 0644
#define CRC32_POLY 0xedb88320u /* IEEE 802.3, reflected */

/* The fields of kvp_result a record holds, in file order. */
typedef enum ck_kind { CK_STR, CK_U32, CK_U64, CK_F64 } ck_kind;

typedef struct ck_field {
    ck_kind kind;
    size_t offset, size;
} ck_field;

#define CKF(kind, m) {kind, offsetof(kvp_result, m), sizeof(((kvp_result *)0)->m)}
#define CKA(kind, m, i)                                                                      \
    {kind, offsetof(kvp_result, m) + (i) * sizeof *((kvp_result *)0)->m,                    \
     sizeof *((kvp_result *)0)->m}
#define CKA8(kind, m)                                                                        \
    CKA(kind, m, 0), CKA(kind, m, 1), CKA(kind, m, 2), CKA(kind, m, 3), CKA(kind, m, 4),    \
        CKA(kind, m, 5), CKA(kind, m, 6), CKA(kind, m, 7)

static const ck_field ck_fields[] = {
    CKF(CK_STR, policy),           CKF(CK_STR, params),
    CKF(CK_U32, steps),            CKF(CK_U32, layers),
    CKF(CK_U32, prompt),           CKF(CK_U32, block_tokens),
    CKF(CK_U32, slots),            CKF(CK_F64, total_time_s),
    CKF(CK_F64, throughput_tok_s), CKF(CK_F64, hbm_hit_rate_kv),
    CKF(CK_F64, hbm_hit_rate_all), CKF(CK_U64, kv_read_hbm),
    CKF(CK_U64, kv_read_dram),     CKF(CK_U64, hbm_read),
    CKF(CK_U64, hbm_write),        CKF(CK_U64, dram_read),
    CKF(CK_U64, dram_write),       CKF(CK_U64, link_up),
    CKF(CK_U64, link_down),        CKF(CK_U64, weight_read),
    CKF(CK_U64, promoted_bytes),   CKF(CK_U64, demoted_bytes),
    CKF(CK_F64, speedup_vs_static), CKF(CK_F64, speedup_vs_unlimited),
    CKF(CK_U32, sa_evaluations),
    /* tiers beyond two: every element of the per-tier and per-link arrays */
    CKF(CK_U32, tiers), CKF(CK_U32, links),
    CKA8(CK_U32, tier_slots), CKA8(CK_U64, tier_kv_read), CKA8(CK_U64, tier_read),
    CKA8(CK_U64, tier_write), CKA8(CK_U64, tier_moved_in), CKA8(CK_U64, tier_moved_out),
    CKA8(CK_F64, tier_busy_s), CKA8(CK_U64, link_up_bytes), CKA8(CK_U64, link_down_bytes),
    CKA8(CK_F64, link_up_busy_s), CKA8(CK_F64, link_down_busy_s),
};
#define CK_NFIELDS (sizeof ck_fields / sizeof *ck_fields)
#define CK_REC_HEAD 3 /* "rec", W, r */

typedef struct ck_rec {
    uint32_t w, r;
    kvp_result res;
} ck_rec;

typedef struct ck_run {
    char **fp; /* "key=value", unescaped */
    size_t nfp;
    ck_rec *rec;
    size_t nrec, cap;
} ck_run;

struct kvp_checkpoint {
    char *save_path;
    ck_run *run;
    size_t nrun, cap;
};

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                  */

static uint32_t crc32(const char *s, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= (unsigned char)s[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (CRC32_POLY & (0u - (c & 1u)));
    }
    return ~c;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static int plain_char(unsigned char c) { return c > ' ' && c < 0x7f && c != '%'; }

/* A growing text buffer; on allocation failure it stays failed. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_escaped(sbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (plain_char(c)) {
            sb_add(b, s, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            sb_add(b, e, sizeof e);
        }
    }
}

/* Ends the line begun at line_start with its checksum. */
static void sb_end_line(sbuf *b, size_t line_start)
{
    if (b->failed)
        return;
    char tail[CK_CRC_HEX + 3];
    snprintf(tail, sizeof tail, " %08" PRIx32 "\n",
             crc32(b->s + line_start, b->len - line_start));
    sb_str(b, tail);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Unescapes s into out (outlen bytes, NUL included); -1 if malformed or too long. */
static int unescape(const char *s, char *out, size_t outlen)
{
    size_t n = 0;
    for (; *s; s++) {
        int c = (unsigned char)*s;
        if (c == '%') {
            int hi = hexval(s[1]), lo = hi < 0 ? -1 : hexval(s[2]);
            if (lo < 0)
                return -1;
            c = hi * 16 + lo;
            s += 2;
            if (c == 0)
                return -1;
        } else if (!plain_char((unsigned char)c)) {
            return -1;
        }
        if (n + 1 >= outlen)
            return -1;
        out[n++] = (char)c;
    }
    out[n] = 0;
    return 0;
}

/* A whole decimal number without sign or junk, at most max. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s || (s[0] == '0' && s[1]))
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static void run_free(ck_run *r)
{
    for (size_t i = 0; i < r->nfp; i++)
        free(r->fp[i]);
    free(r->fp);
    free(r->rec);
}

/* ---------------------------------------------------------------------------------------- */
/* Fingerprints                                                                             */

/* Everything that determines a lookahead result: the version, every parameter as
 * kvp_param_format writes it, and the trace's name, kind and shape. */
static int fingerprint(const kvp_scenario *sc, const kvp_trace *tr, ck_run *out,
                       kvp_error *err)
{
    size_t np;
    const kvp_param_info *p = kvp_params(&np);
    enum { EXTRA = 6 };
    memset(out, 0, sizeof *out);
    out->fp = calloc(np + EXTRA, sizeof *out->fp);
    if (!out->fp)
        return kvp_error_set(err, KVP_ENOMEM, "checkpoint: out of memory");
    char item[CK_ITEM_MAX], val[CK_ITEM_MAX / 2];
    for (size_t i = 0; i < np + EXTRA; i++) {
        if (i < np) {
            if (!kvp_param_in_use(sc, &p[i]))
                continue; /* a two-tier run's fingerprint is what it was before tiers */
            if (kvp_param_format(sc, &p[i], val, sizeof val) < 0) {
                run_free(out);
                return kvp_error_set(err, KVP_EINVAL, "%s: invalid value", p[i].name);
            }
            snprintf(item, sizeof item, "%s=%s", p[i].name, val);
        } else {
            switch (i - np) {
            case 0: snprintf(item, sizeof item, "kvplace=%s", KVP_VERSION); break;
            case 1: snprintf(item, sizeof item, "trace=%s", kvp_trace_name(tr)); break;
            case 2:
                snprintf(item, sizeof item, "trace_kind=%s",
                         kvp_trace_is_bool(tr) ? "bool" : "scores");
                break;
            case 3: snprintf(item, sizeof item, "trace_steps=%u", kvp_trace_steps(tr)); break;
            case 4:
                snprintf(item, sizeof item, "trace_layers=%u", kvp_trace_layers(tr));
                break;
            default:
                snprintf(item, sizeof item, "trace_prompt=%u", kvp_trace_prompt(tr));
                break;
            }
        }
        if (!(out->fp[out->nfp] = dup_str(item))) {
            run_free(out);
            return kvp_error_set(err, KVP_ENOMEM, "checkpoint: out of memory");
        }
        out->nfp++;
    }
    return 0;
}

static int same_fp(const ck_run *a, const ck_run *b)
{
    if (a->nfp != b->nfp)
        return 0;
    for (size_t i = 0; i < a->nfp; i++)
        if (strcmp(a->fp[i], b->fp[i]) != 0)
            return 0;
    return 1;
}

static size_t key_len(const char *item)
{
    const char *eq = strchr(item, '=');
    return eq ? (size_t)(eq - item) : strlen(item);
}

/* The first item of want that saved lacks, with what saved has under its key, as a
 * message. */
static void describe_difference(const ck_run *saved, const ck_run *want, char *buf,
                                size_t len)
{
    for (size_t i = 0; i < want->nfp; i++) {
        const char *w = want->fp[i];
        size_t k = key_len(w);
        const char *have = NULL;
        for (size_t j = 0; j < saved->nfp && !have; j++)
            if (key_len(saved->fp[j]) == k && strncmp(saved->fp[j], w, k) == 0)
                have = saved->fp[j];
        if (have && strcmp(have, w) == 0)
            continue;
        if (have)
            snprintf(buf, len, "%s there, %s here", have, w);
        else
            snprintf(buf, len, "no %.*s there", (int)k, w);
        return;
    }
    snprintf(buf, len, "it has items this version does not write");
}

/* ---------------------------------------------------------------------------------------- */
/* Writing                                                                                  */

static void put_record(sbuf *b, const ck_rec *rec)
{
    size_t start = b->len;
    char num[32];
    snprintf(num, sizeof num, "rec %" PRIu32 " %" PRIu32, rec->w, rec->r);
    sb_str(b, num);
    for (size_t f = 0; f < CK_NFIELDS; f++) {
        const char *at = (const char *)&rec->res + ck_fields[f].offset;
        uint32_t u32;
        uint64_t u64;
        switch (ck_fields[f].kind) {
        case CK_STR:
            sb_str(b, " =");
            sb_escaped(b, at);
            continue;
        case CK_U32:
            memcpy(&u32, at, sizeof u32);
            snprintf(num, sizeof num, " %" PRIu32, u32);
            break;
        case CK_U64:
            memcpy(&u64, at, sizeof u64);
            snprintf(num, sizeof num, " %" PRIu64, u64);
            break;
        case CK_F64: /* the double's bits: exact, and no parsing of floating text */
            memcpy(&u64, at, sizeof u64);
            snprintf(num, sizeof num, " %016" PRIx64, u64);
            break;
        }
        sb_str(b, num);
    }
    sb_end_line(b, start);
}

static void serialise(const kvp_checkpoint *ck, sbuf *b)
{
    char line[96];
    size_t start = b->len, total = 0;
    snprintf(line, sizeof line, "%s %u", CK_MAGIC, CK_VERSION);
    sb_str(b, line);
    sb_end_line(b, start);
    start = b->len;
    snprintf(line, sizeof line, "flags %x", CK_FLAGS);
    sb_str(b, line);
    sb_end_line(b, start);
    for (size_t i = 0; i < ck->nrun; i++) {
        const ck_run *r = &ck->run[i];
        start = b->len;
        snprintf(line, sizeof line, "run %zu %zu", r->nfp, r->nrec);
        sb_str(b, line);
        sb_end_line(b, start);
        for (size_t j = 0; j < r->nfp; j++) {
            start = b->len;
            sb_str(b, "fp =");
            sb_escaped(b, r->fp[j]);
            sb_end_line(b, start);
        }
        for (size_t j = 0; j < r->nrec; j++)
            put_record(b, &r->rec[j]);
        total += r->nrec;
    }
    start = b->len;
    snprintf(line, sizeof line, "end %zu %zu", ck->nrun, total);
    sb_str(b, line);
    sb_end_line(b, start);
}

/* Writes the whole checkpoint to path.tmpPID, syncs it, and renames it over path. */
static int save(const kvp_checkpoint *ck, kvp_error *err)
{
    const char *path = ck->save_path;
    sbuf b = {0};
    serialise(ck, &b);
    if (b.failed) {
        free(b.s);
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", path);
    }
    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp) {
        free(b.s);
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, tlen, "%s.tmp%ld", path, (long)getpid());
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, CK_FILE_MODE);
    if (fd < 0) {
        rc = kvp_error_set(err, KVP_EIO, "%s: cannot write: %s", path, strerror(errno));
        goto done;
    }
    for (size_t off = 0; off < b.len && rc == 0;) {
        ssize_t w = write(fd, b.s + off, b.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            rc = kvp_error_set(err, KVP_EIO, "%s: write failed: %s", path, strerror(errno));
        else
            off += (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = kvp_error_set(err, KVP_EIO, "%s: write failed: %s", path, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = kvp_error_set(err, KVP_EIO, "%s: write failed: %s", path, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = kvp_error_set(err, KVP_EIO, "%s: cannot rename %s into place: %s", path, tmp,
                           strerror(errno));
    if (rc < 0)
        unlink(tmp);
done:
    free(tmp);
    free(b.s);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Reading                                                                                  */

typedef struct ck_reader {
    const char *path;
    size_t line;
    kvp_error *err;
} ck_reader;

static int bad(const ck_reader *rd, const char *what)
{
    return kvp_error_set(rd->err, KVP_EFORMAT, "%s:%zu: %s", rd->path, rd->line, what);
}

static int grow_runs(kvp_checkpoint *ck)
{
    if (ck->nrun < ck->cap)
        return 0;
    size_t cap = ck->cap ? ck->cap * 2 : 4;
    ck_run *p = realloc(ck->run, cap * sizeof *p);
    if (!p)
        return -1;
    ck->run = p;
    ck->cap = cap;
    return 0;
}

static int grow_recs(ck_run *r)
{
    if (r->nrec < r->cap)
        return 0;
    size_t cap = r->cap ? r->cap * 2 : 16;
    ck_rec *p = realloc(r->rec, cap * sizeof *p);
    if (!p)
        return -1;
    r->rec = p;
    r->cap = cap;
    return 0;
}

/* The largest W of lookahead, from its parameter table (so no number is written twice). */
static uint32_t lookahead_w_max(void)
{
    kvp_policy_spec ps;
    size_t n;
    if (kvp_policy_parse(&ps, "lookahead", NULL) < 0)
        return 0;
    const kvp_policy_param *pp = kvp_policy_params(ps.ops, &n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(pp[i].name, "W") == 0)
            return (uint32_t)pp[i].max;
    return 0;
}

static int parse_record(const ck_reader *rd, char **tok, size_t ntok, uint32_t wmax,
                        ck_rec *rec)
{
    uint64_t v;
    if (ntok != CK_REC_HEAD + CK_NFIELDS)
        return bad(rd, "a record has the wrong number of fields");
    memset(rec, 0, sizeof *rec);
    if (parse_u64(tok[1], wmax, &v) < 0 || v < 1)
        return bad(rd, "a record's W is not a window lookahead accepts");
    rec->w = (uint32_t)v;
    if (parse_u64(tok[2], CK_R_STEPS, &v) < 0)
        return bad(rd, "a record's R is not on the 0.1 grid");
    rec->r = (uint32_t)v;
    for (size_t f = 0; f < CK_NFIELDS; f++) {
        const char *t = tok[CK_REC_HEAD + f];
        char *at = (char *)&rec->res + ck_fields[f].offset;
        uint32_t u32;
        switch (ck_fields[f].kind) {
        case CK_STR:
            if (t[0] != '=' || unescape(t + 1, at, ck_fields[f].size) < 0)
                return bad(rd, "a record has a malformed text field");
            break;
        case CK_U32:
            if (parse_u64(t, UINT32_MAX, &v) < 0)
                return bad(rd, "a record has a malformed 32-bit field");
            u32 = (uint32_t)v;
            memcpy(at, &u32, sizeof u32);
            break;
        case CK_U64:
            if (parse_u64(t, UINT64_MAX, &v) < 0)
                return bad(rd, "a record has a malformed 64-bit field");
            memcpy(at, &v, sizeof v);
            break;
        case CK_F64: {
            v = 0;
            size_t k = 0;
            for (; t[k]; k++) {
                int h = hexval(t[k]);
                if (h < 0 || k == 2 * sizeof v)
                    break;
                v = v << 4 | (uint64_t)h;
            }
            if (k != 2 * sizeof v || t[k])
                return bad(rd, "a record has a malformed number");
            memcpy(at, &v, sizeof v);
            break;
        }
        }
    }
    return 0;
}

/* Refuses a run that holds one (W, r) twice. */
static int check_duplicates(const ck_reader *rd, const ck_run *r, uint32_t wmax)
{
    uint8_t *seen = calloc((size_t)wmax * (CK_R_STEPS + 1), 1);
    if (!seen)
        return kvp_error_set(rd->err, KVP_ENOMEM, "%s: out of memory", rd->path);
    int rc = 0;
    for (size_t i = 0; i < r->nrec && rc == 0; i++) {
        size_t k = (size_t)(r->rec[i].w - 1) * (CK_R_STEPS + 1) + r->rec[i].r;
        if (seen[k]++)
            rc = kvp_error_set(rd->err, KVP_EFORMAT, "%s: W=%u R=%.1f is saved twice in one "
                               "run", rd->path, r->rec[i].w,
                               r->rec[i].r / (double)CK_R_STEPS);
    }
    free(seen);
    return rc;
}

/* Splits a verified line (no checksum, no newline) at single blanks. */
static size_t split(char *s, char **tok, size_t max)
{
    size_t n = 0;
    for (;;) {
        if (n == max)
            return max + 1;
        tok[n++] = s;
        char *sp = strchr(s, ' ');
        if (!sp)
            return n;
        *sp = 0;
        s = sp + 1;
    }
}

/* Parses the whole file text (NUL-terminated, len bytes) into ck. */
static int parse(kvp_checkpoint *ck, char *text, size_t len, ck_reader *rd)
{
    enum { HEAD, FLAGS, BODY, DONE } want = HEAD;
    size_t fp_left = 0, rec_left = 0, total = 0;
    ck_run *cur = NULL;
    uint32_t wmax = lookahead_w_max();
    char *p = text, *stop = text + len;
    char *tok[CK_MAX_TOKENS];
    if (len < strlen(CK_MAGIC) + 1 || memcmp(text, CK_MAGIC " ", strlen(CK_MAGIC) + 1) != 0)
        return kvp_error_set(rd->err, KVP_EFORMAT, "%s: not a kvplace checkpoint (bad magic)",
                             rd->path);
    while (p < stop) {
        rd->line++;
        char *nl = memchr(p, '\n', (size_t)(stop - p));
        if (!nl)
            return bad(rd, "the last line is cut short");
        *nl = 0;
        if (strlen(p) != (size_t)(nl - p))
            return bad(rd, "a NUL byte in the text");
        char *sp = strrchr(p, ' ');
        if (!sp || strlen(sp + 1) != CK_CRC_HEX)
            return bad(rd, "a line without its checksum");
        uint32_t want_crc = 0;
        for (int k = 1; k <= CK_CRC_HEX; k++) {
            int h = hexval(sp[k]);
            if (h < 0)
                return bad(rd, "a line without its checksum");
            want_crc = want_crc << 4 | (uint32_t)h;
        }
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION /* lets the fuzzer past the checksums */
        if (crc32(p, (size_t)(sp - p)) != want_crc)
            return bad(rd, "checksum mismatch: the file is corrupt");
#endif
        *sp = 0;
        char *next = nl + 1;
        size_t ntok = split(p, tok, CK_MAX_TOKENS);
        uint64_t a, b;
        if (ntok > CK_MAX_TOKENS)
            return bad(rd, "too many fields on a line");
        if (want == HEAD) {
            if (ntok != 2 || parse_u64(tok[1], UINT32_MAX, &a) < 0)
                return bad(rd, "malformed first line");
            if (a != CK_VERSION)
                return kvp_error_set(rd->err, KVP_EFORMAT, "%s: checkpoint version %" PRIu64
                                     " is not supported (%u)", rd->path, a, CK_VERSION);
            want = FLAGS;
        } else if (want == FLAGS) {
            char *end;
            if (ntok != 2 || strcmp(tok[0], "flags") != 0 || !tok[1][0] ||
                tok[1][strspn(tok[1], "0123456789abcdef")] != 0)
                return bad(rd, "expected the flags line");
            unsigned long f = strtoul(tok[1], &end, 16);
            if (f != CK_FLAGS || strlen(tok[1]) > 8)
                return kvp_error_set(rd->err, KVP_EFORMAT, "%s: unknown flags %s (written by "
                                     "a newer kvplace?)", rd->path, tok[1]);
            want = BODY;
        } else if (fp_left > 0) {
            char item[CK_ITEM_MAX];
            if (ntok != 2 || strcmp(tok[0], "fp") != 0 || tok[1][0] != '=' ||
                unescape(tok[1] + 1, item, sizeof item) < 0 || !strchr(item, '='))
                return bad(rd, "expected a fingerprint line");
            if (!(cur->fp[cur->nfp] = dup_str(item)))
                return kvp_error_set(rd->err, KVP_ENOMEM, "%s: out of memory", rd->path);
            cur->nfp++;
            if (--fp_left == 0) {
                for (size_t i = 0; i + 1 < ck->nrun; i++)
                    if (same_fp(&ck->run[i], cur))
                        return bad(rd, "a run repeats an earlier run's fingerprint");
            }
        } else if (rec_left > 0) {
            if (strcmp(tok[0], "rec") != 0)
                return bad(rd, "expected a record");
            if (grow_recs(cur) < 0)
                return kvp_error_set(rd->err, KVP_ENOMEM, "%s: out of memory", rd->path);
            int rc = parse_record(rd, tok, ntok, wmax, &cur->rec[cur->nrec]);
            if (rc < 0)
                return rc;
            cur->nrec++;
            total++;
            if (--rec_left == 0 && (rc = check_duplicates(rd, cur, wmax)) < 0)
                return rc;
        } else if (strcmp(tok[0], "run") == 0) {
            /* the record count is checked against the lines that follow, never used to
             * size an allocation */
            if (ntok != 3 || parse_u64(tok[1], CK_MAX_ITEMS, &a) < 0 || a == 0 ||
                parse_u64(tok[2], UINT32_MAX, &b) < 0)
                return bad(rd, "malformed run line");
            if (grow_runs(ck) < 0)
                return kvp_error_set(rd->err, KVP_ENOMEM, "%s: out of memory", rd->path);
            cur = &ck->run[ck->nrun++];
            memset(cur, 0, sizeof *cur);
            if (!(cur->fp = calloc((size_t)a, sizeof *cur->fp)))
                return kvp_error_set(rd->err, KVP_ENOMEM, "%s: out of memory", rd->path);
            fp_left = (size_t)a;
            rec_left = (size_t)b;
        } else if (strcmp(tok[0], "end") == 0) {
            if (ntok != 3 || parse_u64(tok[1], UINT64_MAX, &a) < 0 ||
                parse_u64(tok[2], UINT64_MAX, &b) < 0 || a != ck->nrun || b != total)
                return bad(rd, "the totals do not match the file");
            want = DONE;
            if (next != stop)
                return bad(rd, "text after the end line");
        } else {
            return bad(rd, "expected a run or the end line");
        }
        p = next;
    }
    if (want != DONE)
        return kvp_error_set(rd->err, KVP_EFORMAT, "%s: cut short (no end line): not a "
                             "whole checkpoint", rd->path);
    return 0;
}

static int load(kvp_checkpoint *ck, const char *path, kvp_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kvp_error_set(err, KVP_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    char *text = NULL;
    if (fstat(fd, &st) != 0)
        rc = kvp_error_set(err, KVP_EIO, "%s: %s", path, strerror(errno));
    else if (S_ISDIR(st.st_mode))
        rc = kvp_error_set(err, KVP_EIO, "%s: is a directory, not a checkpoint", path);
    else if (!S_ISREG(st.st_mode))
        rc = kvp_error_set(err, KVP_EIO, "%s: not a regular file", path);
    else if (st.st_size == 0)
        rc = kvp_error_set(err, KVP_EFORMAT, "%s: file is empty", path);
    else if ((uintmax_t)st.st_size >= SIZE_MAX)
        rc = kvp_error_set(err, KVP_ERANGE, "%s: file too large", path);
    size_t len = rc == 0 ? (size_t)st.st_size : 0;
    if (rc == 0 && !(text = malloc(len + 1)))
        rc = kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", path);
    for (size_t off = 0; rc == 0 && off < len;) {
        ssize_t r = read(fd, text + off, len - off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = kvp_error_set(err, KVP_EIO, "%s: cannot read: %s", path, strerror(errno));
        else if (r == 0)
            rc = kvp_error_set(err, KVP_EIO, "%s: the file shrank while being read", path);
        else
            off += (size_t)r;
    }
    close(fd);
    if (rc == 0) {
        text[len] = 0;
        ck_reader rd = {path, 0, err};
        rc = parse(ck, text, len, &rd);
    }
    free(text);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* The API                                                                                  */

void kvp_checkpoint_free(kvp_checkpoint *ck)
{
    if (!ck)
        return;
    for (size_t i = 0; i < ck->nrun; i++)
        run_free(&ck->run[i]);
    free(ck->run);
    free(ck->save_path);
    free(ck);
}

int kvp_checkpoint_open(kvp_checkpoint **out, const char *save_path, const char *resume_path,
                        kvp_error *err)
{
    *out = NULL;
    kvp_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck || (save_path && !(ck->save_path = dup_str(save_path)))) {
        kvp_checkpoint_free(ck);
        return kvp_error_set(err, KVP_ENOMEM, "checkpoint: out of memory");
    }
    int rc = 0;
    if (resume_path)
        rc = load(ck, resume_path, err);
    /* Written at once: a path that cannot be written fails now, not after the first
     * evaluation, and an interruption before any evaluation still leaves a file. */
    if (rc == 0 && save_path)
        rc = save(ck, err);
    if (rc < 0) {
        kvp_checkpoint_free(ck);
        return rc;
    }
    *out = ck;
    return 0;
}

uint64_t kvp_checkpoint_count(const kvp_checkpoint *ck)
{
    uint64_t n = 0;
    for (size_t i = 0; ck && i < ck->nrun; i++)
        n += ck->run[i].nrec;
    return n;
}

const char *kvp_checkpoint_save_path(const kvp_checkpoint *ck)
{
    return ck ? ck->save_path : NULL;
}

int kvp_checkpoint_match(const kvp_checkpoint *ck, const kvp_scenario *sc, const kvp_trace *tr,
                         kvp_error *err)
{
    ck_run want;
    if (ck->nrun == 0)
        return 0;
    int rc = fingerprint(sc, tr, &want, err);
    if (rc < 0)
        return rc;
    size_t best = 0, best_same = 0;
    for (size_t i = 0; i < ck->nrun; i++) {
        if (same_fp(&ck->run[i], &want)) {
            run_free(&want);
            return 1;
        }
        size_t same = 0;
        for (size_t j = 0; j < want.nfp && j < ck->run[i].nfp; j++)
            same += strcmp(want.fp[j], ck->run[i].fp[j]) == 0;
        if (same > best_same) {
            best_same = same;
            best = i;
        }
    }
    char diff[2 * CK_ITEM_MAX + 32];
    describe_difference(&ck->run[best], &want, diff, sizeof diff);
    run_free(&want);
    return kvp_error_set(err, KVP_EINVAL, "checkpoint saved for another scenario or trace "
                         "(%s)", diff);
}

int kvp_ck_run(kvp_checkpoint *ck, const kvp_scenario *sc, const kvp_trace *tr, size_t *run,
               kvp_error *err)
{
    ck_run want;
    int rc = fingerprint(sc, tr, &want, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < ck->nrun; i++)
        if (same_fp(&ck->run[i], &want)) {
            run_free(&want);
            *run = i;
            return 0;
        }
    if (grow_runs(ck) < 0) {
        run_free(&want);
        return kvp_error_set(err, KVP_ENOMEM, "checkpoint: out of memory");
    }
    ck->run[ck->nrun] = want;
    *run = ck->nrun++;
    return 0;
}

size_t kvp_ck_nrec(const kvp_checkpoint *ck, size_t run) { return ck->run[run].nrec; }

void kvp_ck_rec(const kvp_checkpoint *ck, size_t run, size_t i, uint32_t *w, uint32_t *r,
                kvp_result *res)
{
    const ck_rec *rec = &ck->run[run].rec[i];
    *w = rec->w;
    *r = rec->r;
    *res = rec->res;
}

int kvp_ck_add(kvp_checkpoint *ck, size_t run, uint32_t w, uint32_t r, const kvp_result *res,
               kvp_error *err)
{
    ck_run *cr = &ck->run[run];
    if (grow_recs(cr) < 0)
        return kvp_error_set(err, KVP_ENOMEM, "checkpoint: out of memory");
    cr->rec[cr->nrec++] = (ck_rec){w, r, *res};
    return ck->save_path ? save(ck, err) : 0;
}
