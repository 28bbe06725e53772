/*
 * The floor of a pass over a float32 .npy trace (docs/PERF.md §12, §31): maps the file and
 * sums every float of its data, on one core, and prints
 *     stream  FILE  floats  wall_s  cpu_s  GB_per_s  sum
 * With --read it reads the file instead, READ_CHUNK bytes at a time into one buffer that
 * stays in cache, as kvplace's .npy reader does (a row at a time), and prints `stream-read`
 * first: on a virtual machine the mapping's first-touch page faults cost several times the
 * copy out of the page cache.  The `npy` phase of bench/run.sh times kvplace's `static` and
 * bench/npy_model.py against the mapped pass in the same run.
 *
 *     stream [--read] FILE.npy
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define READ_CHUNK (256u << 10)

/* Four sums of the n floats at p, so that the adds do not chain through one register. */
static void sum_floats(const unsigned char *p, size_t n, float s[4])
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float x[4];
        memcpy(x, p + i * 4, sizeof x);
        s[0] += x[0];
        s[1] += x[1];
        s[2] += x[2];
        s[3] += x[3];
    }
    for (; i < n; i++) {
        float x;
        memcpy(&x, p + i * 4, sizeof x);
        s[0] += x;
    }
}

/* The data from off to the end of fd read in READ_CHUNK pieces and summed; -1 on an error. */
static int sum_read(int fd, size_t off, size_t size, float s[4])
{
    static unsigned char buf[READ_CHUNK];
    if (lseek(fd, (off_t)off, SEEK_SET) < 0)
        return -1;
    size_t have = 0; /* bytes in buf, a float's tail of the last read first */
    for (size_t left = size - off; left > 0;) {
        const ssize_t r = read(fd, buf + have, READ_CHUNK - have);
        if (r <= 0)
            return -1;
        left -= (size_t)r;
        have += (size_t)r;
        sum_floats(buf, have / 4, s);
        memmove(buf, buf + have / 4 * 4, have % 4);
        have %= 4;
    }
    return 0;
}

static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

int main(int argc, char **argv)
{
    const int by_read = argc == 3 && !strcmp(argv[1], "--read");
    if (argc != 2 + by_read) {
        fprintf(stderr, "usage: stream [--read] FILE.npy\n");
        return 2;
    }
    const char *path = argv[1 + by_read];
    int fd = open(path, O_RDONLY);
    struct stat st;
    unsigned char pre[12];
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < 12 ||
        pread(fd, pre, sizeof pre, 0) != (ssize_t)sizeof pre) {
        fprintf(stderr, "stream: %s: cannot open or too short\n", path);
        return 1;
    }
    const size_t size = (size_t)st.st_size;
    if (memcmp(pre, "\x93NUMPY", 6) != 0) {
        fprintf(stderr, "stream: %s: not a .npy file\n", path);
        return 1;
    }
    /* header length: 2 bytes (version 1) or 4 (versions 2 and 3), little-endian */
    size_t off = pre[6] == 1 ? 10u + (size_t)(pre[8] | pre[9] << 8)
                             : 12u + (size_t)(pre[8] | pre[9] << 8 | pre[10] << 16 |
                                              (uint32_t)pre[11] << 24);
    if (off > size) {
        fprintf(stderr, "stream: %s: bad header\n", path);
        return 1;
    }
    const size_t n = (size - off) / 4;
    double t0 = now(), c0 = cpu_now();
    float s[4] = {0, 0, 0, 0};
    if (by_read) {
        if (sum_read(fd, off, off + n * 4, s) < 0) {
            fprintf(stderr, "stream: %s: read failed\n", path);
            return 1;
        }
    } else {
        const unsigned char *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            fprintf(stderr, "stream: %s: cannot map\n", path);
            return 1;
        }
        sum_floats(map + off, n, s);
        munmap((void *)map, size);
    }
    close(fd);
    double wall = now() - t0, cpu = cpu_now() - c0;
    printf("%s %s %zu %.4f %.4f %.2f %.6g\n", by_read ? "stream-read" : "stream", path, n, wall,
           cpu, (double)n * 4 / wall / 1e9, (double)(s[0] + s[1] + s[2] + s[3]));
    return 0;
}
