/*
 * The floor of a pass over a float32 .npy trace (docs/PERF.md §12): maps the file and sums
 * every float of its data, on one core, and prints
 *     stream  FILE  floats  wall_s  cpu_s  GB_per_s  sum
 * The `npy` phase of bench/run.sh times kvplace's `static` and bench/npy_model.py against it
 * in the same run.
 *
 *     stream FILE.npy
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

static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: stream FILE.npy\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < 12) {
        fprintf(stderr, "stream: %s: cannot open or too short\n", argv[1]);
        return 1;
    }
    const size_t size = (size_t)st.st_size;
    const unsigned char *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED || memcmp(map, "\x93NUMPY", 6) != 0) {
        fprintf(stderr, "stream: %s: not a .npy file\n", argv[1]);
        return 1;
    }
    /* header length: 2 bytes (version 1) or 4 (versions 2 and 3), little-endian */
    size_t off = map[6] == 1 ? 10u + (size_t)(map[8] | map[9] << 8)
                             : 12u + (size_t)(map[8] | map[9] << 8 | map[10] << 16 |
                                              (uint32_t)map[11] << 24);
    if (off > size) {
        fprintf(stderr, "stream: %s: bad header\n", argv[1]);
        return 1;
    }
    const size_t n = (size - off) / 4;
    double t0 = now(), c0 = cpu_now();
    /* four sums, so that the adds do not chain through one register */
    float s[4] = {0, 0, 0, 0};
    const unsigned char *p = map + off;
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
    double wall = now() - t0, cpu = cpu_now() - c0;
    printf("stream %s %zu %.4f %.4f %.2f %.6g\n", argv[1], n, wall, cpu, (double)n * 4 / wall / 1e9,
           (double)(s[0] + s[1] + s[2] + s[3]));
    munmap((void *)map, size);
    return 0;
}
