/* NumPy .npy traces (docs/MODEL.md §2, docs/TRACE_FORMAT.md): the reader, which reads one
 * (step, layer) row at a time from the open file and converts it, and the writer, which
 * streams any trace with scores out as float32, one row at a time. */
#include "trace/trace.h"
#include "base/error.h"
#include "base/simd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SSE2__) && !defined(KVP_NO_SIMD)
#define NPY_SSE2 1
#include <emmintrin.h>
#else
#define NPY_SSE2 0
#endif
/* An AVX2 build of the band's pass beside the SSE2 one, taken where the CPU has AVX2 (GCC
 * and clang on x86-64; not under KVP_NO_SIMD; KVPLACE_SSE2_ONLY in the environment turns it off,
 * base/simd.h). */
#if NPY_SSE2 && defined(__x86_64__) && defined(__GNUC__)
#define NPY_AVX2 1
#include <immintrin.h>
#else
#define NPY_AVX2 0
#endif

/* The .npy prelude: magic, major and minor version, then the header length (2 bytes in
 * version 1.0, 4 bytes in 2.0 and 3.0), then the header text (a Python dict literal). */
static const unsigned char npy_magic[] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
#define NPY_MAGIC_LEN sizeof npy_magic
#define NPY_PRELUDE_V1 10u /* magic + 2 version bytes + 2 length bytes */
#define NPY_PRELUDE_V2 12u /* magic + 2 version bytes + 4 length bytes */
#define NPY_MAX_DIMS 64    /* NumPy's own limit */
#define NPY_MAX_STR 63     /* longest dtype string we keep */
#define NPY_HEADER_ALIGN 64u /* the writer aligns the data as NumPy does */

/* IEEE-754 bit fields. */
#define F32_EXP_MASK 0x7f800000u
#define F32_MANT_MASK 0x007fffffu
#define F32_MANT_BITS 23
#define F32_SIGN_SHIFT 31
#define F16_SIGN_MASK 0x8000u
#define F16_EXP_MASK 0x7c00u
#define F16_MANT_MASK 0x03ffu
#define F16_MANT_BITS 10
#define F16_MIN_NORMAL 0x0400u  /* 2^-14: exponent field 1, mantissa 0 */
#define F16_TO_F32_BIAS 112u    /* 127 - 15 */
#define F16_SUBNORMAL_UNIT 0x1p-24f /* value of the half mantissa's last bit at exponent 0 */
#define SIGN_SHIFT_16_TO_32 16

typedef enum npy_dtype { NPY_F32, NPY_F16, NPY_BOOL } npy_dtype;

/* The accepted dtypes, with the size of one element. */
static const struct {
    const char *descr;
    npy_dtype dtype;
    size_t itemsize;
} npy_dtypes[] = {
    {"<f4", NPY_F32, 4},
    {"<f2", NPY_F16, 2},
    {"|b1", NPY_BOOL, 1},
};

typedef struct npy_impl {
    int fd;          /* the file, open while the trace is; -1 before it is opened */
    off_t data_off;  /* first element */
    npy_dtype dtype;
    size_t itemsize;
    uint32_t cols; /* C = P + N - 1 */
    uint32_t heads; /* H of a 4-D (N, L, H, C) file, read as (N, L * H, C); 1 if 3-D */
    int four;       /* the file is 4-D */
    char *path;    /* full path, for messages (kvp_trace.name may be truncated) */
} npy_impl;

#define WINDOW_BYTES (1u << 20)

/* A step's rows of several layers read in one call (npy_read_with): rows (n, l0 .. l1) are
 * in buf, the last one's used part only, and got bytes of them were read (fewer than asked
 * when the file ends). */
typedef struct npy_window {
    unsigned char *buf;
    size_t cap;         /* bytes: WINDOW_BYTES, or one row where a row is larger */
    uint32_t n, l0, l1; /* l0 == l1: nothing read */
    uint32_t last;      /* the highest layer of the cursors sharing it: none read past it */
    size_t got;
} npy_window;

typedef struct npy_cursor {
    const kvp_trace *t;
    const npy_impl *im;
    uint32_t layer;
    kvp_budget budget;
    npy_window *win;   /* shared with the cursors that read with this one, or NULL */
    int owns_win;
    const unsigned char *raw; /* the file's bytes of row raw_step: in buf or in win */
    /* all sized C, allocated at open */
    unsigned char *buf;
    float *row;        /* converted scores of row_step */
    uint32_t *pos;     /* the access set */
    float *score;
    uint32_t *scratch; /* for kvp_topk */
    uint32_t raw_step, row_step;
    int raw_valid, row_valid;
    /* count_below on float32 rows: the last step's k-th key and a band around it (keys as
     * bits_key orders them; width 0: no band yet) */
    uint32_t band_key, band_width;
} npy_cursor;

static uint16_t load_le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static uint32_t load_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void store_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* IEEE half to single, exact for every value.  A normal half's exponent and mantissa move up
 * together as one field, rebiased; a subnormal half is mant * 2^-24, which a float holds
 * exactly (mant < 2^10), as it does the zeros of either sign. */
float kvp_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & F16_SIGN_MASK) << SIGN_SHIFT_16_TO_32;
    uint32_t em = h & (F16_EXP_MASK | F16_MANT_MASK);
    uint32_t bits;
    if (em >= F16_EXP_MASK) { /* inf, NaN (the reader refuses them before converting) */
        bits = sign | F32_EXP_MASK | (em & F16_MANT_MASK) << (F32_MANT_BITS - F16_MANT_BITS);
    } else if (em >= F16_MIN_NORMAL) {
        bits = sign |
               ((em << (F32_MANT_BITS - F16_MANT_BITS)) + (F16_TO_F32_BIAS << F32_MANT_BITS));
    } else {
        float mag = (float)em * F16_SUBNORMAL_UNIT;
        memcpy(&bits, &mag, sizeof bits);
        bits |= sign;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ---------------------------------------------------------------------------------------- */
/* Header parsing: the header is a Python dict literal such as
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (40, 32, 300), }
 * Keys may come in any order, with any whitespace; each must appear exactly once. */

typedef struct npy_header {
    char descr[NPY_MAX_STR + 1];
    int fortran;
    unsigned ndim;
    uint64_t shape[NPY_MAX_DIMS];
    int have_descr, have_fortran, have_shape;
} npy_header;

typedef struct hparser {
    const char *s;
    size_t len, i;
    const char *path;
    kvp_error *err;
} hparser;

static int hp_fail(hparser *hp, const char *what)
{
    return kvp_error_set(hp->err, KVP_EFORMAT, "%s: malformed .npy header at byte %zu: %s",
                         hp->path, hp->i, what);
}

static int hp_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void hp_skip_ws(hparser *hp)
{
    while (hp->i < hp->len && hp_is_space(hp->s[hp->i]))
        hp->i++;
}

static int hp_peek(const hparser *hp)
{
    return hp->i < hp->len ? (unsigned char)hp->s[hp->i] : -1;
}

/* A quoted string without escapes ('...' or "..."), copied into out. */
static int hp_string(hparser *hp, char *out, size_t outlen)
{
    int q = hp_peek(hp);
    if (q != '\'' && q != '"')
        return hp_fail(hp, "expected a quoted string");
    hp->i++;
    size_t n = 0;
    while (hp->i < hp->len && hp->s[hp->i] != q) {
        char c = hp->s[hp->i];
        if (c == '\\' || c == '\n')
            return hp_fail(hp, "unexpected character in a string");
        if (n + 1 >= outlen)
            return hp_fail(hp, "string too long");
        out[n++] = c;
        hp->i++;
    }
    if (hp->i >= hp->len)
        return hp_fail(hp, "unterminated string");
    hp->i++;
    out[n] = '\0';
    return 0;
}

static int hp_word(hparser *hp, const char *word)
{
    size_t n = strlen(word);
    if (hp->len - hp->i < n || memcmp(hp->s + hp->i, word, n) != 0)
        return 0;
    hp->i += n;
    return 1;
}

/* A non-negative integer (Python 2 wrote a trailing L on longs). */
static int hp_uint(hparser *hp, uint64_t *out)
{
    if (hp_peek(hp) == '-')
        return kvp_error_set(hp->err, KVP_EFORMAT,
                             "%s: shape has a negative dimension (at byte %zu of the header)",
                             hp->path, hp->i);
    int c = hp_peek(hp);
    if (c < '0' || c > '9')
        return hp_fail(hp, "expected a whole number in the shape");
    uint64_t v = 0;
    while ((c = hp_peek(hp)) >= '0' && c <= '9') {
        uint64_t d = (uint64_t)(c - '0');
        if (v > (UINT64_MAX - d) / 10)
            return kvp_error_set(hp->err, KVP_ERANGE,
                                 "%s: a shape dimension overflows 64 bits (at byte %zu of the "
                                 "header)",
                                 hp->path, hp->i);
        v = v * 10 + d;
        hp->i++;
    }
    if (hp_peek(hp) == 'L')
        hp->i++;
    *out = v;
    return 0;
}

/* A tuple of whole numbers: (), (4,), (4, 5), (4, 5,). */
static int hp_shape(hparser *hp, npy_header *h)
{
    if (hp_peek(hp) != '(')
        return hp_fail(hp, "expected '(' to open the shape");
    hp->i++;
    h->ndim = 0;
    for (;;) {
        hp_skip_ws(hp);
        if (hp_peek(hp) == ')') {
            hp->i++;
            return 0;
        }
        if (h->ndim == NPY_MAX_DIMS)
            return hp_fail(hp, "too many dimensions");
        int rc = hp_uint(hp, &h->shape[h->ndim]);
        if (rc < 0)
            return rc;
        h->ndim++;
        hp_skip_ws(hp);
        if (hp_peek(hp) == ',') {
            hp->i++;
        } else if (hp_peek(hp) != ')') {
            return hp_fail(hp, "expected ',' or ')' in the shape");
        }
    }
}

static int hp_dict(hparser *hp, npy_header *h)
{
    hp_skip_ws(hp);
    if (hp_peek(hp) != '{')
        return hp_fail(hp, "expected '{'");
    hp->i++;
    for (;;) {
        hp_skip_ws(hp);
        if (hp_peek(hp) == '}') {
            hp->i++;
            break;
        }
        char key[NPY_MAX_STR + 1];
        int rc = hp_string(hp, key, sizeof key);
        if (rc < 0)
            return rc;
        hp_skip_ws(hp);
        if (hp_peek(hp) != ':')
            return hp_fail(hp, "expected ':' after a key");
        hp->i++;
        hp_skip_ws(hp);
        int *have;
        if (strcmp(key, "descr") == 0) {
            have = &h->have_descr;
            if (hp_peek(hp) != '\'' && hp_peek(hp) != '"')
                return kvp_error_set(hp->err, KVP_EFORMAT,
                                     "%s: dtype is not a simple type string (structured "
                                     "arrays are not supported)",
                                     hp->path);
            rc = hp_string(hp, h->descr, sizeof h->descr);
        } else if (strcmp(key, "fortran_order") == 0) {
            have = &h->have_fortran;
            if (hp_word(hp, "True"))
                h->fortran = 1;
            else if (hp_word(hp, "False"))
                h->fortran = 0;
            else
                rc = hp_fail(hp, "fortran_order must be True or False");
        } else if (strcmp(key, "shape") == 0) {
            have = &h->have_shape;
            rc = hp_shape(hp, h);
        } else {
            return kvp_error_set(hp->err, KVP_EFORMAT,
                                 "%s: unexpected key '%s' in the .npy header", hp->path, key);
        }
        if (rc < 0)
            return rc;
        if (*have)
            return kvp_error_set(hp->err, KVP_EFORMAT,
                                 "%s: key '%s' appears twice in the .npy header", hp->path,
                                 key);
        *have = 1;
        hp_skip_ws(hp);
        if (hp_peek(hp) == ',') {
            hp->i++;
        } else if (hp_peek(hp) != '}') {
            return hp_fail(hp, "expected ',' or '}'");
        }
    }
    hp_skip_ws(hp);
    if (hp->i != hp->len)
        return hp_fail(hp, "unexpected text after the header dict");
    static const char *const names[] = {"descr", "fortran_order", "shape"};
    const int have[] = {h->have_descr, h->have_fortran, h->have_shape};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (!have[k])
            return kvp_error_set(hp->err, KVP_EFORMAT, "%s: the .npy header has no '%s'",
                                 hp->path, names[k]);
    return 0;
}

/* "(40, 32, 300)" as Python prints it: "()" and "(40,)" for 0 and 1 dimensions. */
static void format_shape(const npy_header *h, char *buf, size_t len)
{
    size_t at = 0;
    at += (size_t)snprintf(buf, len, "(");
    for (unsigned d = 0; d < h->ndim && at < len; d++)
        at += (size_t)snprintf(buf + at, len - at, "%s%llu", d ? ", " : "",
                               (unsigned long long)h->shape[d]);
    if (at < len)
        snprintf(buf + at, len - at, "%s)", h->ndim == 1 ? "," : "");
}

/* Checks the parsed header against what a trace may be; fills the implementation. */
static int check_header(const npy_header *h, const char *path, size_t data_avail,
                        npy_impl *im, kvp_trace *t, kvp_error *err)
{
    size_t nd = sizeof npy_dtypes / sizeof npy_dtypes[0], k;
    for (k = 0; k < nd; k++)
        if (strcmp(h->descr, npy_dtypes[k].descr) == 0)
            break;
    if (k == nd)
        return kvp_error_set(err, KVP_EFORMAT,
                             "%s: dtype '%s' is not supported (float32 '<f4', float16 '<f2' "
                             "or bool '|b1')",
                             path, h->descr);
    im->dtype = npy_dtypes[k].dtype;
    im->itemsize = npy_dtypes[k].itemsize;
    if (h->fortran)
        return kvp_error_set(err, KVP_EFORMAT,
                             "%s: array is in Fortran order; save it in C order "
                             "(numpy.ascontiguousarray)",
                             path);

    char shape[NPY_MAX_DIMS * 24];
    format_shape(h, shape, sizeof shape);
    if (h->ndim != 3 && h->ndim != 4)
        return kvp_error_set(err, KVP_EFORMAT,
                             "%s: shape %s has %u dimension%s; expected (steps, layers, "
                             "positions) or (steps, layers, heads, positions)",
                             path, shape, h->ndim, h->ndim == 1 ? "" : "s");
    /* A 4-D file (N, L, H, C) is read as (N, L * H, C): row l * H + h is head h of layer l
     * (src/trace/streams.c makes the heads' views). */
    const int four = h->ndim == 4;
    uint64_t n = h->shape[0], l = h->shape[1], c = h->shape[four ? 3 : 2];
    uint64_t heads = four ? h->shape[2] : 1;
    if (heads == 0)
        return kvp_error_set(err, KVP_EFORMAT, "%s: shape %s has no heads", path, shape);
    if (four && (l > UINT32_MAX || heads > UINT32_MAX || l * heads > UINT32_MAX))
        return kvp_error_set(err, KVP_ERANGE,
                             "%s: shape %s: layers times heads must be at most %u", path,
                             shape, UINT32_MAX);
    im->heads = (uint32_t)heads;
    im->four = four;
    l *= heads;
    if (n == 0)
        return kvp_error_set(err, KVP_EFORMAT, "%s: shape %s has no steps", path, shape);
    if (l == 0)
        return kvp_error_set(err, KVP_EFORMAT, "%s: shape %s has no layers", path, shape);
    if (c < n)
        return kvp_error_set(err, KVP_EFORMAT,
                             "%s: shape %s: %llu steps need at least %llu positions (the "
                             "prompt is positions - steps + 1)",
                             path, shape, (unsigned long long)n, (unsigned long long)n);
    uint64_t bytes = 0;
    if (l > UINT64_MAX / n || c > UINT64_MAX / (n * l) ||
        im->itemsize > UINT64_MAX / (n * l * c) ||
        (bytes = n * l * c * im->itemsize) > SIZE_MAX)
        return kvp_error_set(err, KVP_ERANGE,
                             "%s: shape %s is too large: its size in bytes overflows 64 bits",
                             path, shape);
    if (n > UINT32_MAX || l > UINT32_MAX || c > UINT32_MAX)
        return kvp_error_set(err, KVP_ERANGE,
                             "%s: shape %s: each dimension must be at most %u", path, shape,
                             UINT32_MAX);
    if (bytes != (uint64_t)data_avail)
        return kvp_error_set(err, KVP_EFORMAT, "%s: shape %s needs %llu bytes of data, file "
                             "has %llu",
                             path, shape, (unsigned long long)bytes,
                             (unsigned long long)data_avail);
    t->steps = (uint32_t)n;
    t->layers = (uint32_t)l;
    t->prompt = (uint32_t)(c - n + 1);
    t->is_bool = im->dtype == NPY_BOOL;
    im->cols = (uint32_t)c;
    return 0;
}

/* len bytes of fd at off into buf, a pread after another while the kernel gives part of it
 * (or is interrupted).  Returns the bytes read, len unless the file ends first, or -1 with
 * errno. */
static ssize_t read_at(int fd, unsigned char *buf, size_t len, off_t off)
{
    size_t got = 0;
    while (got < len) {
        const ssize_t r = pread(fd, buf + got, len - got, off + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* The error of a read_at that returned r for fewer bytes than asked (what names the bytes). */
static int read_failed(ssize_t r, const char *path, const char *what, kvp_error *err)
{
    if (r < 0)
        return kvp_error_set(err, KVP_EIO, "%s: cannot read %s: %s", path, what,
                             strerror(errno));
    return kvp_error_set(err, KVP_EIO, "%s: the file ends before %s (was it truncated after "
                         "it was opened?)", path, what);
}

/* Opens the file (kept open for read_row) and parses its prelude and header. */
static int npy_load(npy_impl *im, kvp_trace *t, const char *path, kvp_error *err)
{
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kvp_error_set(err, KVP_EIO, "%s: %s", path, strerror(errno));
    im->fd = fd; /* closed by npy_destroy */
    struct stat st;
    if (fstat(fd, &st) != 0)
        return kvp_error_set(err, KVP_EIO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return kvp_error_set(err, KVP_EIO, "%s: is a directory, not a .npy file", path);
    if (!S_ISREG(st.st_mode))
        return kvp_error_set(err, KVP_EIO, "%s: not a regular file", path);
    if (st.st_size == 0)
        return kvp_error_set(err, KVP_EFORMAT, "%s: file is empty", path);
    if ((uintmax_t)st.st_size > SIZE_MAX)
        return kvp_error_set(err, KVP_ERANGE, "%s: file too large to read", path);
    const size_t size = (size_t)st.st_size;

    unsigned char p[NPY_PRELUDE_V2];
    const size_t plen = size < sizeof p ? size : sizeof p;
    const ssize_t pr = read_at(fd, p, plen, 0);
    if (pr != (ssize_t)plen)
        return read_failed(pr, path, "its header", err);
    size_t cmp = size < NPY_MAGIC_LEN ? size : NPY_MAGIC_LEN;
    if (size < NPY_MAGIC_LEN || memcmp(p, npy_magic, cmp) != 0)
        return kvp_error_set(err, KVP_EFORMAT, "%s: not a NumPy .npy file (bad magic)", path);
    if (size < NPY_PRELUDE_V1)
        return kvp_error_set(err, KVP_EFORMAT, "%s: file too short (%zu bytes) for a .npy "
                             "header", path, size);
    unsigned major = p[NPY_MAGIC_LEN], minor = p[NPY_MAGIC_LEN + 1];
    size_t start, hlen;
    if (major == 1 && minor == 0) {
        start = NPY_PRELUDE_V1;
        hlen = load_le16(p + NPY_MAGIC_LEN + 2);
    } else if ((major == 2 || major == 3) && minor == 0) {
        if (size < NPY_PRELUDE_V2)
            return kvp_error_set(err, KVP_EFORMAT, "%s: file too short (%zu bytes) for a .npy "
                                 "header", path, size);
        start = NPY_PRELUDE_V2;
        hlen = load_le32(p + NPY_MAGIC_LEN + 2);
    } else {
        return kvp_error_set(err, KVP_EFORMAT,
                             "%s: .npy format version %u.%u is not supported (1.0, 2.0 or 3.0)",
                             path, major, minor);
    }
    if (hlen > size - start)
        return kvp_error_set(err, KVP_EFORMAT,
                             "%s: header length %zu runs past the end of the file (%zu bytes)",
                             path, hlen, size);

    char *text = malloc(hlen ? hlen : 1);
    if (!text)
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory for the .npy header", path);
    int rc;
    const ssize_t hr = read_at(fd, (unsigned char *)text, hlen, (off_t)start);
    if (hr != (ssize_t)hlen) {
        rc = read_failed(hr, path, "its header", err);
    } else {
        npy_header h;
        memset(&h, 0, sizeof h);
        hparser hp = {text, hlen, 0, path, err};
        rc = hp_dict(&hp, &h);
        if (rc >= 0)
            rc = check_header(&h, path, size - start - hlen, im, t, err);
    }
    free(text);
    im->data_off = (off_t)(start + hlen);
    return rc;
}

static void npy_destroy(kvp_trace *t)
{
    npy_impl *im = t->impl;
    if (im) {
        if (im->fd >= 0)
            close(im->fd);
        free(im->path);
        free(im);
    }
    free(t);
}

/* ---------------------------------------------------------------------------------------- */
/* Cursors */

static void npy_cursor_close(void *state)
{
    npy_cursor *c = state;
    if (!c)
        return;
    if (c->owns_win) {
        free(c->win->buf);
        free(c->win);
    }
    free(c->buf);
    free(c->row);
    free(c->pos);
    free(c->score);
    free(c->scratch);
    free(c);
}

static int npy_cursor_open(const kvp_trace *t, uint32_t layer, kvp_budget budget, void **state,
                           kvp_error *err)
{
    const npy_impl *im = t->impl;
    npy_cursor *c = calloc(1, sizeof *c);
    if (!c)
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory for a cursor", im->path);
    c->t = t;
    c->im = im;
    c->layer = layer;
    c->budget = budget;
    size_t cols = im->cols;
    c->buf = malloc(cols * im->itemsize);
    c->row = malloc(cols * sizeof *c->row);
    c->pos = malloc(cols * sizeof *c->pos);
    c->score = malloc(cols * sizeof *c->score);
    c->scratch = malloc((cols + 4) * sizeof *c->scratch); /* + 4: band_pass's stores */
    if (!c->buf || !c->row || !c->pos || !c->score || !c->scratch) {
        npy_cursor_close(c);
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory for a cursor", im->path);
    }
    *state = c;
    return 0;
}

/* "step n, layer l" of the cursor's row n, with the head in a 4-D file. */
static void row_name(const npy_cursor *c, uint32_t n, char *buf, size_t len)
{
    if (c->im->heads > 1)
        snprintf(buf, len, "step %u, layer %u, head %u", n, c->layer / c->im->heads,
                 c->layer % c->im->heads);
    else
        snprintf(buf, len, "step %u, layer %u", n, c->layer);
}

/* Row (n, layer)'s used part, len bytes at off, in c->win (c->raw points there): read with
 * the next layers' rows of the step, up to the window's last layer and its size, when the
 * window does not hold it.  Returns len, fewer when the file ends first, or -1 (errno). */
static ssize_t window_row(npy_cursor *c, uint32_t n, size_t len, off_t off)
{
    npy_window *w = c->win;
    const size_t rb = c->im->cols * c->im->itemsize;
    if (w->n != n || c->layer < w->l0 || c->layer >= w->l1) {
        const size_t rows = w->last - c->layer + 1;
        const size_t fit = w->cap / rb < rows ? w->cap / rb : rows;
        const ssize_t r = read_at(c->im->fd, w->buf, (fit - 1) * rb + len, off);
        w->l0 = w->l1 = c->layer;
        if (r < 0)
            return -1;
        w->n = n;
        w->l1 = c->layer + (uint32_t)fit;
        w->got = (size_t)r;
    }
    const size_t at = (c->layer - w->l0) * rb;
    c->raw = w->buf + at;
    return w->got <= at ? 0 : (ssize_t)(w->got - at < len ? w->got - at : len);
}

/* The used part of row (n, layer), its first P + n elements, read into c->buf or, for a
 * cursor that reads with others, c->win: the file is read, not mapped, because a mapping
 * costs a page fault per 64 KB on first touch, which on a virtual machine takes several
 * times the copy out of the page cache that a read makes into a buffer that stays in cache
 * (docs/PERF.md §31).  Read once per step: the full selection after a band's miss and a bad
 * score's message take the same bytes again (from the window, which another cursor may have
 * moved meanwhile, only through window_row). */
static int read_row(npy_cursor *c, uint32_t n, kvp_error *err)
{
    if (c->raw_valid && c->raw_step == n && !c->win)
        return 0;
    const npy_impl *im = c->im;
    const size_t len = (size_t)(c->t->prompt + n) * im->itemsize;
    const off_t off = im->data_off +
                      (off_t)(((uint64_t)n * c->t->layers + c->layer) * im->cols * im->itemsize);
    c->raw_valid = 0;
    c->raw = c->buf;
    const ssize_t r = c->win ? window_row(c, n, len, off) : read_at(im->fd, c->buf, len, off);
    if (r != (ssize_t)len) {
        char name[64];
        row_name(c, n, name, sizeof name);
        return read_failed(r, im->path, name, err);
    }
    c->raw_step = n;
    c->raw_valid = 1;
    return 0;
}

static int bad_score(const npy_cursor *c, uint32_t n, uint32_t p, int nan, int neg,
                     kvp_error *err)
{
    const char *what = nan ? "NaN" : neg ? "-inf" : "+inf";
    char name[64];
    row_name(c, n, name, sizeof name);
    return kvp_error_set(err, KVP_EFORMAT, "%s: %s, position %u: score is %s", c->im->path,
                         name, p, what);
}

/* Converts the used part of row (n, layer) into c->row, refusing NaN and infinities. */
static int load_row(npy_cursor *c, uint32_t n, kvp_error *err)
{
    c->row_valid = 0;
    int rc = read_row(c, n, err);
    if (rc < 0)
        return rc;
    const unsigned char *src = c->raw;
    uint32_t ctx = c->t->prompt + n;
    if (c->im->dtype == NPY_F32) {
        for (uint32_t p = 0; p < ctx; p++) {
            uint32_t bits = load_le32(src + (size_t)p * 4);
            if ((bits & F32_EXP_MASK) == F32_EXP_MASK)
                return bad_score(c, n, p, (bits & F32_MANT_MASK) != 0,
                                 (bits >> F32_SIGN_SHIFT) != 0, err);
            memcpy(&c->row[p], &bits, sizeof bits);
        }
    } else {
        for (uint32_t p = 0; p < ctx; p++) {
            uint16_t h = load_le16(src + (size_t)p * 2);
            if ((h & F16_EXP_MASK) == F16_EXP_MASK)
                return bad_score(c, n, p, (h & F16_MANT_MASK) != 0, (h & F16_SIGN_MASK) != 0,
                                 err);
            c->row[p] = kvp_half_to_float(h);
        }
    }
    c->row_step = n;
    c->row_valid = 1;
    return 0;
}

static int npy_cursor_step(void *state, uint32_t n, kvp_access *a, kvp_error *err)
{
    npy_cursor *c = state;
    uint32_t ctx = c->t->prompt + n;
    uint32_t count;
    if (c->im->dtype == NPY_BOOL) {
        int rc = read_row(c, n, err);
        if (rc < 0)
            return rc;
        const unsigned char *src = c->raw;
        count = 0;
        for (uint32_t p = 0; p < ctx; p++) {
            if (src[p]) {
                c->pos[count] = p;
                c->score[count] = 1.0f;
                count++;
            }
        }
    } else {
        int rc = load_row(c, n, err);
        if (rc < 0)
            return rc;
        count = kvp_access_k(c->budget, ctx);
        kvp_topk(c->row, ctx, count, c->pos, c->score, c->scratch);
    }
    a->step = n;
    a->layer = c->layer;
    a->context = ctx;
    a->count = count;
    a->pos = c->pos;
    a->score = c->score;
    a->bits = NULL;
    return 0;
}

/* Order-preserving key of float bits (as topk.c's: -0 folded onto +0). */
static inline uint32_t bits_key(uint32_t bits)
{
    if (bits == 0x80000000u)
        bits = 0;
    return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

/* The float whose key (bits_key) is key; key must not be a NaN's. */
static inline float key_float(uint32_t key)
{
    const uint32_t bits = key & 0x80000000u ? key & 0x7FFFFFFFu : ~key;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* For a 4-bit mask: the offsets of its set bits, in order, a byte each (unused bytes 0). */
#if NPY_SSE2
static const uint32_t BAND_OFFSETS[16] = {
    0x00000000u, 0x00000000u, 0x00000001u, 0x00000100u, 0x00000002u, 0x00000200u,
    0x00000201u, 0x00020100u, 0x00000003u, 0x00000300u, 0x00000301u, 0x00030100u,
    0x00000302u, 0x00030200u, 0x00030201u, 0x03020100u,
};
/* popcount of a 4-bit mask, by a nibble table */
#define POP4(m) ((uint32_t)(0x4332322132212110ull >> ((m) * 4) & 0xF))
#endif

/* key within [key of -inf, key of +inf]: the keys outside are NaNs'. */
static inline uint32_t key_clamp(uint32_t key)
{
    return key < 0x007FFFFFu ? 0x007FFFFFu : key > 0xFF800000u ? 0xFF800000u : key;
}

/* The r-th highest (1 <= r <= n) of a[0..n), reordering a: a three-way quickselect (the
 * band's keys have many ties). */
static uint32_t nth_highest(uint32_t *a, uint32_t n, uint32_t r)
{
    uint32_t lo = 0, hi = n;
    const uint32_t want = r - 1;
    for (;;) {
        const uint32_t pivot = a[lo + (hi - lo) / 2];
        uint32_t gt = lo, i = lo, lt = hi; /* [lo, gt) > pivot, [gt, i) == pivot, [lt, hi) < */
        while (i < lt) {
            const uint32_t x = a[i];
            if (x > pivot) {
                a[i++] = a[gt];
                a[gt++] = x;
            } else if (x < pivot) {
                a[i] = a[--lt];
                a[lt] = x;
            } else {
                i++;
            }
        }
        if (want < gt)
            hi = gt;
        else if (want >= lt)
            lo = lt;
        else
            return pivot;
    }
}

/* The band around the band key to aim at, in entries, and its first half-width in keys. */
#define BAND_TARGET 512u
#define BAND_FIRST 4096u
#define BAND_BUCKETS 256u /* the band's histogram */

/* One pass over the scores [p, to) of a float32 row (read): returns how many lie above
 * hi_f, appends the bits of those in [lo_f, hi_f] to out[*nc..] in position order, and sets
 * *bad when one is a NaN or an infinity.  Plain C (other targets, KVP_NO_SIMD), and below
 * SSE2 and AVX2 builds; each ends with this one for its last few scores. */
static uint32_t band_pass_plain(const unsigned char *src, uint32_t p, uint32_t to, float lo_f,
                                float hi_f, uint32_t *out, uint32_t *nc, uint32_t *bad)
{
    uint32_t up_sum = 0, m = *nc, b = 0;
    for (; p < to; p++) {
        const uint32_t bits = load_le32(src + (size_t)p * 4);
        float x;
        memcpy(&x, &bits, sizeof x);
        b |= (bits & F32_EXP_MASK) == F32_EXP_MASK;
        const uint32_t up = x > hi_f;
        up_sum += up;
        out[m] = bits;
        m += (x >= lo_f) & !up;
    }
    *nc = m;
    *bad |= b;
    return up_sum;
}

#if NPY_SSE2
/* 4 scores at a time (the data is little-endian like the machine): the band's positions
 * are stored by the offset table, without a branch, then replaced by their bits. */
static uint32_t band_pass_sse2(const unsigned char *src, uint32_t p, uint32_t to, float lo_f,
                               float hi_f, uint32_t *out, uint32_t *nc, uint32_t *bad)
{
    const __m128 vlo = _mm_set1_ps(lo_f), vhi = _mm_set1_ps(hi_f);
    const __m128i expm = _mm_set1_epi32((int)F32_EXP_MASK);
    __m128i bad4 = _mm_setzero_si128();
    uint32_t up_sum = 0, m = *nc;
    const uint32_t m0 = m;
    for (; p + 4 <= to; p += 4) {
        const __m128i bits = _mm_loadu_si128((const __m128i *)(src + (size_t)p * 4));
        bad4 = _mm_or_si128(bad4, _mm_cmpeq_epi32(_mm_and_si128(bits, expm), expm));
        const __m128 x = _mm_castsi128_ps(bits);
        const unsigned up = (unsigned)_mm_movemask_ps(_mm_cmpgt_ps(x, vhi));
        const unsigned in = (unsigned)_mm_movemask_ps(_mm_cmpge_ps(x, vlo)) & ~up;
        up_sum += POP4(up);
        const uint32_t offs = BAND_OFFSETS[in];
        out[m] = p + (offs & 0xFF);
        out[m + 1] = p + (offs >> 8 & 0xFF);
        out[m + 2] = p + (offs >> 16 & 0xFF);
        out[m + 3] = p + (offs >> 24);
        m += POP4(in);
    }
    for (uint32_t j = m0; j < m; j++)
        out[j] = load_le32(src + (size_t)out[j] * 4);
    *bad |= (uint32_t)_mm_movemask_epi8(bad4) != 0;
    *nc = m;
    return up_sum + band_pass_plain(src, p, to, lo_f, hi_f, out, nc, bad);
}
#endif

#if NPY_AVX2
/* 8 scores at a time: the count above the band in a vector, each half's band entries
 * packed to the front by a permute (the offset table as indices) and stored whole. */
__attribute__((target("avx2"))) static uint32_t
band_pass_avx2(const unsigned char *src, uint32_t p, uint32_t to, float lo_f, float hi_f,
               uint32_t *out, uint32_t *nc, uint32_t *bad)
{
    const __m256 vlo = _mm256_set1_ps(lo_f), vhi = _mm256_set1_ps(hi_f);
    const __m256i expm = _mm256_set1_epi32((int)F32_EXP_MASK);
    __m256i bad8 = _mm256_setzero_si256(), up8 = _mm256_setzero_si256();
    uint32_t m = *nc;
    for (; p + 8 <= to; p += 8) {
        const __m256i bits = _mm256_loadu_si256((const __m256i *)(src + (size_t)p * 4));
        bad8 = _mm256_or_si256(bad8, _mm256_cmpeq_epi32(_mm256_and_si256(bits, expm), expm));
        const __m256 x = _mm256_castsi256_ps(bits);
        const __m256 gt = _mm256_cmp_ps(x, vhi, _CMP_GT_OQ);
        up8 = _mm256_sub_epi32(up8, _mm256_castps_si256(gt)); /* a true lane is -1 */
        const unsigned in = (unsigned)_mm256_movemask_ps(
            _mm256_andnot_ps(gt, _mm256_cmp_ps(x, vlo, _CMP_GE_OQ)));
        const __m128i i0 = _mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)BAND_OFFSETS[in & 15]));
        const __m128i i1 = _mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)BAND_OFFSETS[in >> 4]));
        const __m128 lo4 = _mm_castsi128_ps(_mm256_castsi256_si128(bits));
        const __m128 hi4 = _mm_castsi128_ps(_mm256_extracti128_si256(bits, 1));
        _mm_storeu_ps((float *)(out + m), _mm_permutevar_ps(lo4, i0));
        m += POP4(in & 15);
        _mm_storeu_ps((float *)(out + m), _mm_permutevar_ps(hi4, i1));
        m += POP4(in >> 4);
    }
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(up8), _mm256_extracti128_si256(up8, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    *bad |= (uint32_t)_mm256_movemask_epi8(bad8) != 0;
    *nc = m;
    return (uint32_t)_mm_cvtsi128_si32(s) + band_pass_plain(src, p, to, lo_f, hi_f, out, nc, bad);
}
#endif

static uint32_t band_pass(const unsigned char *src, uint32_t p, uint32_t to, float lo_f,
                          float hi_f, uint32_t *out, uint32_t *nc, uint32_t *bad)
{
#if NPY_AVX2
    if (__builtin_cpu_supports("avx2") && kvp_simd_wide())
        return band_pass_avx2(src, p, to, lo_f, hi_f, out, nc, bad);
#endif
#if NPY_SSE2
    return band_pass_sse2(src, p, to, lo_f, hi_f, out, nc, bad);
#else
    return band_pass_plain(src, p, to, lo_f, hi_f, out, nc, bad);
#endif
}

/* The error of float32 row n's first NaN or infinity, as load_row names it (the row read). */
static int first_bad(const npy_cursor *c, uint32_t n, kvp_error *err)
{
    const unsigned char *src = c->raw;
    for (uint32_t p = 0; p < c->t->prompt + n; p++) {
        uint32_t bits = load_le32(src + (size_t)p * 4);
        if ((bits & F32_EXP_MASK) == F32_EXP_MASK)
            return bad_score(c, n, p, (bits & F32_MANT_MASK) != 0,
                             (bits >> F32_SIGN_SHIFT) != 0, err);
    }
    return 0;
}

/* Float32 row n (read) checked as load_row checks it, without converting it: band_pass with
 * an empty band (no finite score is >= +inf) reads it once for its bad flag. */
static int f32_check_row(npy_cursor *c, uint32_t n, kvp_error *err)
{
    const float inf = key_float(0xFF800000u);
    uint32_t nc = 0, bad = 0;
    band_pass(c->raw, 0, c->t->prompt + n, inf, inf, c->scratch, &nc, &bad);
    return bad ? first_bad(c, n, err) : 0;
}

/* Float32 row (n, layer), read: checks every score as load_row does and, in the same pass
 * over the row (band_pass), counts the scores above the band (all, and below `lim`) and copies
 * those in it; when the k-th key falls in the band, the band alone settles the count (ties
 * to the lower positions, as kvp_topk).  Returns 1 and *h, 0 when the band missed (the
 * caller takes the full selection), or < 0.  From one step to the next the k-th score moves
 * little, so the band, centred on the last one and resized towards BAND_TARGET entries,
 * mostly holds it: one streaming pass per row, no conversion of the row, and the selection on a
 * few hundred keys in cache: a histogram of BAND_BUCKETS over the band's key range finds
 * the bucket holding the k-th, a quickselect the key in it (docs/PERF.md §12, §27). */
static int f32_band_count(npy_cursor *c, uint32_t n, uint32_t k, uint32_t lim, uint32_t *h,
                          kvp_error *err)
{
    const unsigned char *src = c->raw;
    const uint32_t ctx = c->t->prompt + n;
    const uint32_t lo = key_clamp(c->band_key > c->band_width ? c->band_key - c->band_width : 0);
    const uint32_t hi = key_clamp(
        c->band_key < UINT32_MAX - c->band_width ? c->band_key + c->band_width : UINT32_MAX);
    /* The band as floats (the keys' order is the floats', -0 == +0), its ends past the
     * infinities clamped to them; NaN compares false, and is refused below anyway. */
    const float lo_f = key_float(lo), hi_f = key_float(hi);
    uint32_t *keys = c->scratch, nc = 0, bad = 0;
    const uint32_t above_low = band_pass(src, 0, lim, lo_f, hi_f, keys, &nc, &bad);
    const uint32_t nc_low = nc; /* the band's entries below lim */
    const uint32_t above = above_low + band_pass(src, lim, ctx, lo_f, hi_f, keys, &nc, &bad);
    if (bad)
        return first_bad(c, n, err);
    c->band_width = nc > 2 * BAND_TARGET ? c->band_width - c->band_width / 4
                    : nc < BAND_TARGET / 2 ? c->band_width + c->band_width / 4 + 1
                                           : c->band_width;
    if (!(above < k && k - above <= nc)) {
        c->band_width = c->band_width * 2 + 1;
        return 0;
    }
    /* The need-th highest key of the band, t.  Its keys lie in [lo, hi + 1] (+ 1: a zero of
     * either sign is in a band whose top is -0, and its key is +0's): BAND_BUCKETS buckets
     * of 2^shift keys cover that. */
    const uint32_t need = k - above;
    uint32_t shift = 0;
    while ((((uint64_t)hi + 1 - lo) >> shift) >= BAND_BUCKETS)
        shift++;
    uint32_t hist[BAND_BUCKETS];
    memset(hist, 0, sizeof hist);
    for (uint32_t j = 0; j < nc; j++) {
        const uint32_t key = bits_key(keys[j]);
        keys[j] = key;
        hist[(key - lo) >> shift]++;
    }
    uint32_t b = BAND_BUCKETS - 1, rem = need; /* the rem-th highest of bucket b is t */
    while (hist[b] < rem)
        rem -= hist[b--];
    uint32_t *in_b = c->pos, m = 0;
    for (uint32_t j = 0; j < nc; j++) {
        in_b[m] = keys[j];
        m += (keys[j] - lo) >> shift == b;
    }
    const uint32_t t = nth_highest(in_b, m, rem);
    uint32_t above_t = 0, low_gt = 0, low_eq = 0;
    for (uint32_t j = 0; j < nc_low; j++) {
        low_gt += keys[j] > t;
        low_eq += keys[j] == t;
    }
    for (uint32_t j = nc_low; j < nc; j++)
        above_t += keys[j] > t;
    above_t += low_gt;
    const uint32_t ties = need - above_t; /* the ties at t taken, in position order */
    c->band_key = t;
    *h = above_low + low_gt + (low_eq < ties ? low_eq : ties);
    return 1;
}

/* The set's size and its positions below `below`, without the set: a bool row counted, a
 * float32 row by f32_band_count (the full selection when its band misses), another score
 * row's top-k counted below `below` (kvp_topk_count_below); no position list made. */
static int npy_count_below(void *state, uint32_t n, uint32_t below, uint32_t *k, uint32_t *h,
                           kvp_error *err)
{
    npy_cursor *c = state;
    const uint32_t ctx = c->t->prompt + n, lim = below < ctx ? below : ctx;
    int rc = read_row(c, n, err);
    if (rc < 0)
        return rc;
    if (c->im->dtype == NPY_BOOL) {
        const unsigned char *src = c->raw;
        uint32_t low = 0, all = 0;
        for (uint32_t p = 0; p < lim; p++)
            low += src[p] != 0;
        all = low;
        for (uint32_t p = lim; p < ctx; p++)
            all += src[p] != 0;
        *k = all;
        *h = low;
        return 0;
    }
    *k = kvp_access_k(c->budget, ctx);
    if (c->im->dtype == NPY_F32 && (*k == 0 || *k >= ctx || lim == 0 || lim >= ctx)) {
        /* the count needs no selection (kvp_topk_count_below's first cases): the row is
         * only checked */
        if ((rc = f32_check_row(c, n, err)) < 0)
            return rc;
        const uint32_t kk = *k < ctx ? *k : ctx;
        *h = kk == 0 || lim == 0 ? 0 : lim >= ctx ? kk : lim;
        return 0;
    }
    if (c->im->dtype == NPY_F32) {
        if (c->band_width == 0)
            c->band_width = BAND_FIRST;
        if ((rc = f32_band_count(c, n, *k, lim, h, err)) != 0)
            return rc < 0 ? rc : 0;
    }
    if ((rc = load_row(c, n, err)) < 0)
        return rc;
    *h = kvp_topk_count_below(c->row, ctx, *k, lim, c->scratch, &c->band_key);
    return 0;
}

static int npy_scores(void *state, uint32_t n, float *out, kvp_error *err)
{
    npy_cursor *c = state;
    if (c->im->dtype == NPY_BOOL)
        return kvp_error_set(err, KVP_EINVAL, "%s: a bool trace has marks, not scores",
                             c->im->path);
    if (!c->row_valid || c->row_step != n) {
        int rc = load_row(c, n, err);
        if (rc < 0)
            return rc;
    }
    memcpy(out, c->row, (size_t)(c->t->prompt + n) * sizeof *out);
    return 0;
}

/* The leader's window, made at the first cursor that reads with it and widened to each
 * one's layer: a step's rows of the group in one call of up to WINDOW_BYTES (docs/PERF.md
 * §31).  Without memory for it, each cursor reads its own rows, as before. */
static void npy_read_with(void *state, void *leader)
{
    npy_cursor *c = state, *ld = leader;
    if (!ld->win) {
        const size_t rb = ld->im->cols * ld->im->itemsize;
        npy_window *w = calloc(1, sizeof *w);
        if (w)
            w->cap = rb > WINDOW_BYTES ? rb : WINDOW_BYTES;
        if (!w || !(w->buf = malloc(w->cap))) {
            free(w);
            return;
        }
        w->last = ld->layer;
        ld->win = w;
        ld->owns_win = 1;
    }
    if (c->layer > ld->win->last)
        ld->win->last = c->layer;
    c->win = ld->win;
}

static const kvp_trace_vt npy_vt = {
    "npy",       npy_cursor_open, npy_cursor_step, npy_cursor_close, npy_scores, npy_destroy,
    NULL,        npy_count_below, NULL,           npy_read_with,
};

int kvp_trace_open_npy(kvp_trace **out, const char *path, kvp_error *err)
{
    *out = NULL;
    kvp_trace *t = calloc(1, sizeof *t);
    npy_impl *im = calloc(1, sizeof *im);
    char *copy = malloc(strlen(path) + 1);
    if (!t || !im || !copy) {
        free(t);
        free(im);
        free(copy);
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", path);
    }
    strcpy(copy, path);
    im->path = copy;
    im->fd = -1;
    t->vt = &npy_vt;
    t->impl = im;
    snprintf(t->name, sizeof t->name, "%s", path);
    int rc = npy_load(im, t, path, err);
    if (rc < 0) {
        npy_destroy(t);
        return rc;
    }
    if (im->four) /* one stream per head (docs/MODEL.md "Streams") */
        return kvp_trace_heads_of(out, t, im->heads, err);
    *out = t;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Writer */

/* The version 1.0 header of a float32 C-order array, padded with spaces and a newline so the
 * data starts at a multiple of NPY_HEADER_ALIGN.  Returns the total header length. */
static size_t build_header(unsigned char *buf, size_t len, uint64_t n, uint64_t l, uint64_t c)
{
    char dict[160];
    int dl = snprintf(dict, sizeof dict,
                      "{'descr': '<f4', 'fortran_order': False, 'shape': (%llu, %llu, %llu), }",
                      (unsigned long long)n, (unsigned long long)l, (unsigned long long)c);
    size_t used = NPY_PRELUDE_V1 + (size_t)dl + 1; /* + the final newline */
    size_t total = (used + NPY_HEADER_ALIGN - 1) / NPY_HEADER_ALIGN * NPY_HEADER_ALIGN;
    if (total > len)
        return 0;
    memcpy(buf, npy_magic, NPY_MAGIC_LEN);
    buf[NPY_MAGIC_LEN] = 1;
    buf[NPY_MAGIC_LEN + 1] = 0;
    size_t hlen = total - NPY_PRELUDE_V1;
    buf[NPY_MAGIC_LEN + 2] = (unsigned char)hlen;
    buf[NPY_MAGIC_LEN + 3] = (unsigned char)(hlen >> 8);
    memcpy(buf + NPY_PRELUDE_V1, dict, (size_t)dl);
    memset(buf + NPY_PRELUDE_V1 + dl, ' ', total - used);
    buf[total - 1] = '\n';
    return total;
}

/* Streams rows in file order (step outer, layer inner) with one cursor per layer; each
 * cursor is stepped to n before its scores are asked for (the vtable's contract). */
static int write_rows(const kvp_trace *t, FILE *f, kvp_cursor **cur, float *row,
                      unsigned char *bytes, uint32_t cols, const char *path,
                      volatile sig_atomic_t *cancel, kvp_error *err)
{
    for (uint32_t n = 0; n < t->steps; n++) {
        uint32_t ctx = t->prompt + n;
        if (cancel && *cancel)
            return kvp_error_set(err, KVP_EINTR, "%s: interrupted at step %u", path, n);
        for (uint32_t l = 0; l < t->layers; l++) {
            kvp_access a;
            int rc = kvp_cursor_next(cur[l], &a, err);
            if (rc < 0)
                return rc;
            if (rc == 0)
                return kvp_error_set(err, KVP_EINVAL, "%s: trace %s ended before step %u",
                                     path, t->name, n);
            rc = t->vt->scores(cur[l]->state, n, row, err);
            if (rc < 0)
                return rc;
            for (uint32_t p = ctx; p < cols; p++)
                row[p] = 0.0f;
            for (uint32_t p = 0; p < cols; p++) {
                uint32_t bits;
                memcpy(&bits, &row[p], sizeof bits);
                store_le32(bytes + (size_t)p * 4, bits);
            }
            if (fwrite(bytes, 4, cols, f) != cols)
                return kvp_error_set(err, KVP_EIO, "%s: write failed: %s", path,
                                     strerror(errno));
        }
    }
    return 0;
}

int kvp_trace_write_npy(const kvp_trace *t, const char *path, kvp_error *err)
{
    return kvp_trace_write_npy_cancel(t, path, NULL, err);
}

int kvp_trace_write_npy_cancel(const kvp_trace *t, const char *path,
                               volatile sig_atomic_t *cancel, kvp_error *err)
{
    if (!t->vt->scores || t->is_bool)
        return kvp_error_set(err, KVP_EINVAL, "%s: trace %s has no scores to write%s", path,
                             t->name, t->is_bool ? " (it holds bool marks)" : "");
    uint64_t n = t->steps, l = t->layers, c = (uint64_t)t->prompt + t->steps - 1;
    if (n == 0 || l == 0 || t->prompt == 0)
        return kvp_error_set(err, KVP_EINVAL, "%s: trace %s is empty (%u steps, %u layers, "
                             "prompt %u)", path, t->name, t->steps, t->layers, t->prompt);
    if (c > UINT32_MAX || c > UINT64_MAX / (n * l * 4))
        return kvp_error_set(err, KVP_ERANGE, "%s: trace %s is too large for one .npy", path,
                             t->name);

    unsigned char header[4 * NPY_HEADER_ALIGN]; /* the dict takes at most ~130 bytes */
    size_t hsize = build_header(header, sizeof header, n, l, c);
    if (hsize == 0)
        return kvp_error_set(err, KVP_ERANGE, "%s: .npy header too long", path);

    kvp_cursor **cur = calloc((size_t)l, sizeof *cur);
    float *row = malloc((size_t)c * sizeof *row);
    unsigned char *bytes = malloc((size_t)c * 4);
    kvp_out *out = NULL;
    FILE *f = NULL;
    int rc = 0;
    if (!cur || !row || !bytes) {
        rc = kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    for (uint32_t k = 0; k < t->layers; k++) {
        /* sparsity 0: the access sets are not used, only the stepping */
        rc = kvp_cursor_create(&cur[k], t, k, kvp_budget_sparsity(0.0), err);
        if (rc < 0)
            goto done;
    }
    if ((rc = kvp_out_open(&out, path, err)) < 0)
        goto done;
    f = kvp_out_file(out);
    if (fwrite(header, 1, hsize, f) != hsize) {
        rc = kvp_error_set(err, KVP_EIO, "%s: write failed: %s", path, strerror(errno));
        goto done;
    }
    rc = write_rows(t, f, cur, row, bytes, (uint32_t)c, path, cancel, err);
done:
    if (out) {
        int crc = kvp_out_close(out, rc >= 0, err);
        if (rc >= 0)
            rc = crc;
    }
    if (cur)
        for (uint32_t k = 0; k < t->layers; k++)
            kvp_cursor_free(cur[k]);
    free(cur);
    free(row);
    free(bytes);
    return rc;
}
