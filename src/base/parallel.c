/* Running a function over the layers on a few threads, with progress. */
#include "base/parallel.h"

#include <pthread.h>
#include <time.h>


typedef struct par_job {
    uint32_t layers;
    kvp_layer_fn fn;
    void *user;
    atomic_uint next_layer;
    atomic_ullong done; /* progress units reported by workers */
    int *rc;            /* per layer */
} par_job;

static void *par_worker(void *arg)
{
    par_job *job = arg;
    for (;;) {
        unsigned l = atomic_fetch_add(&job->next_layer, 1u);
        if (l >= job->layers)
            break;
        job->rc[l] = job->fn(l, job->user, &job->done);
    }
    return NULL;
}

int kvp_parallel_layers(uint32_t layers, const kvp_run_options *ro, uint64_t total_units,
                        kvp_layer_fn fn, void *user, int *rc_out)
{
    par_job job;
    job.layers = layers;
    job.fn = fn;
    job.user = user;
    atomic_init(&job.next_layer, 0u);
    atomic_init(&job.done, 0ull);
    job.rc = rc_out;
    for (uint32_t l = 0; l < layers; l++)
        rc_out[l] = 0;

    unsigned threads = ro && ro->threads ? ro->threads : 1;
    if (threads > layers)
        threads = layers;
    int want_progress = ro && ro->progress;
    if (threads <= 1 && !want_progress) {
        par_worker(&job);
        return 0;
    }
    pthread_t tid[KVP_MAX_THREADS];
    if (threads > KVP_MAX_THREADS)
        threads = KVP_MAX_THREADS;
    unsigned started = 0;
    for (; started < threads; started++)
        if (pthread_create(&tid[started], NULL, par_worker, &job) != 0)
            break;
    if (started == 0) {
        par_worker(&job); /* no threads to be had: run here */
    } else if (want_progress) {
        /* Poll the shared counter; the callback runs on this thread only. */
        while (atomic_load(&job.next_layer) < layers + started) {
            uint64_t d = atomic_load(&job.done);
            ro->progress(ro->progress_user, d, total_units);
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    if (want_progress)
        ro->progress(ro->progress_user, total_units, total_units);
    return 0;
}
