/*
 * Output files, as zstd treats them: "-" is stdout; a symbolic link is written through (its
 * target is replaced, the link stays); a device, FIFO or socket is written to directly; a
 * regular file or a new name is written under a temporary name beside the file and renamed
 * into place on success, so that a failed run leaves no half-written file.
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include "base/error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_ATTEMPTS 100
#define LINK_DEPTH 40 /* as the kernel's ELOOP limit */

typedef enum out_mode { OUT_STDOUT, OUT_DIRECT, OUT_RENAME } out_mode;

struct kvp_out {
    out_mode mode;
    const char *path; /* as the caller named it, for messages */
    char *final;      /* the file replaced on success (a link's target) */
    char *tmp;
    FILE *f;
};

/* The file a chain of symbolic links ends at (which need not exist yet); malloc'd. */
static char *follow_links(const char *path)
{
    char *cur = strdup(path);
    for (int depth = 0; cur && depth < LINK_DEPTH; depth++) {
        struct stat st;
        if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode))
            return cur;
        char target[PATH_MAX];
        ssize_t n = readlink(cur, target, sizeof target - 1);
        if (n < 0)
            return cur;
        target[n] = 0;
        char *next;
        const char *slash = strrchr(cur, '/');
        if (target[0] == '/' || !slash) {
            next = strdup(target);
        } else { /* relative to the link's directory */
            size_t dlen = (size_t)(slash - cur) + 1;
            next = malloc(dlen + (size_t)n + 1);
            if (next) {
                memcpy(next, cur, dlen);
                memcpy(next + dlen, target, (size_t)n + 1);
            }
        }
        free(cur);
        cur = next;
    }
    return cur;
}

int kvp_out_open(kvp_out **out, const char *path, kvp_error *err)
{
    *out = NULL;
    if (!path || !*path)
        return kvp_error_set(err, KVP_EINVAL, "empty output file name");
    kvp_out *o = calloc(1, sizeof *o);
    if (!o)
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", path);
    o->path = path;
    if (strcmp(path, "-") == 0) {
        o->mode = OUT_STDOUT;
        o->f = stdout;
        *out = o;
        return 0;
    }
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        if (S_ISDIR(st.st_mode)) {
            free(o);
            return kvp_error_set(err, KVP_EIO, "%s: is a directory", path);
        }
        o->mode = OUT_DIRECT;
        o->f = fopen(path, "w");
        if (!o->f) {
            int e = errno;
            free(o);
            return kvp_error_set(err, KVP_EIO, "%s: cannot open: %s", path, strerror(e));
        }
        *out = o;
        return 0;
    }
    o->mode = OUT_RENAME;
    o->final = follow_links(path);
    size_t len = o->final ? strlen(o->final) + 32 : 0;
    o->tmp = o->final ? malloc(len) : NULL;
    if (!o->tmp) {
        kvp_out_close(o, 0, NULL);
        return kvp_error_set(err, KVP_ENOMEM, "%s: out of memory", path);
    }
    /* An existing file keeps its permissions; a new one gets 0666 less the umask, as a plain
     * fopen would give it. */
    struct stat old;
    int keep_mode = stat(o->final, &old) == 0;
    for (unsigned i = 0; i < TMP_ATTEMPTS; i++) {
        snprintf(o->tmp, len, "%s.tmp%ld-%u", o->final, (long)getpid(), i);
        int fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd < 0) {
            if (errno == EEXIST)
                continue;
            int e = errno;
            free(o->tmp);
            o->tmp = NULL;
            kvp_out_close(o, 0, NULL);
            return kvp_error_set(err, KVP_EIO, "%s: cannot create: %s", path, strerror(e));
        }
        if (keep_mode)
            (void)fchmod(fd, old.st_mode & 07777);
        o->f = fdopen(fd, "w");
        if (!o->f) {
            int e = errno;
            close(fd);
            kvp_out_close(o, 0, NULL);
            return kvp_error_set(err, KVP_EIO, "%s: cannot create: %s", path, strerror(e));
        }
        *out = o;
        return 0;
    }
    free(o->tmp);
    o->tmp = NULL;
    kvp_out_close(o, 0, NULL);
    return kvp_error_set(err, KVP_EIO, "%s: cannot find a free temporary name", path);
}

FILE *kvp_out_file(const kvp_out *o) { return o ? o->f : NULL; }

int kvp_out_close(kvp_out *o, int ok, kvp_error *err)
{
    int rc = 0;
    if (!o)
        return 0;
    if (o->f) {
        int werr = ferror(o->f);
        /* A file renamed over an old one must be on disk first, or a crash could leave
         * neither. */
        if (o->mode == OUT_RENAME && ok && !werr && (fflush(o->f) != 0 || fsync(fileno(o->f)) != 0))
            werr = 1;
        int cerr = o->mode == OUT_STDOUT ? fflush(o->f) : fclose(o->f);
        if (cerr != 0 || werr) {
            if (ok)
                rc = kvp_error_set(err, KVP_EIO, "%s: write failed: %s", o->path,
                                   strerror(errno));
            ok = 0;
        }
    }
    if (o->mode == OUT_RENAME && o->tmp) {
        if (o->f && ok && rename(o->tmp, o->final) != 0) {
            rc = kvp_error_set(err, KVP_EIO, "%s: cannot rename into place: %s", o->path,
                               strerror(errno));
            ok = 0;
        }
        if (!ok || !o->f)
            unlink(o->tmp);
    }
    free(o->final);
    free(o->tmp);
    free(o);
    return rc;
}

/* The name path would have once its directory's links are resolved: realpath of the directory
 * plus the last component (the file itself need not exist). */
static char *canonical(const char *path)
{
    char *full = realpath(path, NULL);
    if (full)
        return full;
    char *link = follow_links(path);
    if (!link)
        return NULL;
    const char *slash = strrchr(link, '/');
    const char *base = slash ? slash + 1 : link;
    char *dir = slash ? strndup(link, (size_t)(slash - link) + (slash == link)) : strdup(".");
    char *rdir = dir ? realpath(dir, NULL) : NULL;
    char *res = NULL;
    if (rdir && (res = malloc(strlen(rdir) + strlen(base) + 2)))
        sprintf(res, "%s/%s", rdir, base);
    free(dir);
    free(rdir);
    free(link);
    return res;
}

int kvp_path_same(const char *a, const char *b)
{
    if (!a || !b || strcmp(a, "-") == 0 || strcmp(b, "-") == 0)
        return 0;
    struct stat sa, sb;
    int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
    if (ea && eb)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    if (ea != eb)
        return 0;
    char *ca = canonical(a), *cb = canonical(b);
    int same = ca && cb && strcmp(ca, cb) == 0;
    if (!ca || !cb)
        same = strcmp(a, b) == 0;
    free(ca);
    free(cb);
    return same;
}
