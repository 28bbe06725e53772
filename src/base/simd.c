#include "base/simd.h"

#include <pthread.h>
#include <stdlib.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int wide;

static void read_env(void) { wide = getenv("KVPLACE_SSE2_ONLY") == NULL; }

int kvp_simd_wide(void)
{
    pthread_once(&once, read_env);
    return wide;
}
