/*
 * Presets: named machines and models, each a list of assignments applied with
 * kvp_param_assign.  docs/presets.md gives every number's source and says which are
 * approximations.
 */
#include "kvplace.h"

#include <stdio.h>
#include <string.h>

/* The default scenario is gh200-paper + llama-3.1-8b.  Their numbers live here only: the
 * preset strings below are built from these macros, and params.c points its table defaults at
 * the kvp_dflt_* texts (declared there). */
#define STUDY_HBM_CAPACITY "24GB"      /* the study's Table I: HBM cut from 96 GB on purpose */
#define STUDY_HBM_BANDWIDTH "4.9TB/s"  /* Table I */
#define STUDY_DRAM_CAPACITY "480GB"    /* Table I */
#define STUDY_DRAM_BANDWIDTH "500GB/s" /* Table I */
#define STUDY_LINK_BANDWIDTH "900GB/s" /* Table I, taken as each direction (docs/presets.md) */
#define L31_8B_LAYERS "32"             /* meta-llama/Llama-3.1-8B config.json */
#define L31_8B_KV_HEADS "8"
#define L31_8B_HEAD_DIM "128"           /* hidden_size 4096 / 32 attention heads */
#define L31_8B_DTYPE_BYTES "2"          /* bf16 */
#define L31_8B_WEIGHT_BYTES "16060522496" /* 8,030,261,248 parameters x 2 bytes */

const char kvp_dflt_hw[] = "gh200-paper";
const char kvp_dflt_model[] = "llama-3.1-8b";
const char kvp_dflt_hbm_capacity[] = STUDY_HBM_CAPACITY;
const char kvp_dflt_hbm_bandwidth[] = STUDY_HBM_BANDWIDTH;
const char kvp_dflt_dram_capacity[] = STUDY_DRAM_CAPACITY;
const char kvp_dflt_dram_bandwidth[] = STUDY_DRAM_BANDWIDTH;
const char kvp_dflt_link_bandwidth[] = STUDY_LINK_BANDWIDTH;
const char kvp_dflt_layers[] = L31_8B_LAYERS;
const char kvp_dflt_kv_heads[] = L31_8B_KV_HEADS;
const char kvp_dflt_head_dim[] = L31_8B_HEAD_DIM;
const char kvp_dflt_dtype_bytes[] = L31_8B_DTYPE_BYTES;
const char kvp_dflt_weight_bytes[] = L31_8B_WEIGHT_BYTES;

int kvp_preset_apply_builtin(kvp_scenario *sc, const char *name, const char *kind,
                             kvp_error *err);

#define KIND_HW "hw"
#define KIND_MODEL "model"
#define ASSIGN_MAX 128 /* longest single assignment in a preset string */
#define NAMES_MAX 400  /* room for the list of known names in a message */

/* Hardware: HBM and off-package DRAM as the datasheets print them (decimal GB), bandwidths
 * at their peak.  Models: bf16 weights = parameters x 2, parameters counted from config.json
 * (embeddings and an untied output head included: docs/MODEL.md §1 counts all the weights). */
static const kvp_preset presets[] = {
    {"gh200-paper", KIND_HW,
     "hbm_capacity=" STUDY_HBM_CAPACITY " hbm_bandwidth=" STUDY_HBM_BANDWIDTH
     " dram_capacity=" STUDY_DRAM_CAPACITY " dram_bandwidth=" STUDY_DRAM_BANDWIDTH
     " link_bandwidth=" STUDY_LINK_BANDWIDTH,
     "GH200 as the study modelled it (Fang et al. 2025, arXiv 2508.13231, Table I): HBM cut "
     "to 24 GB, link 900 GB/s"},
    {"gh200", KIND_HW,
     "hbm_capacity=96GB hbm_bandwidth=4TB/s dram_capacity=480GB dram_bandwidth=512GB/s "
     "link_bandwidth=450GB/s",
     "NVIDIA GH200, 96 GB HBM3 at 4 TB/s; 480 GB LPDDR5X at 512 GB/s; NVLink-C2C 450 GB/s "
     "each way"},
    {"gh200-144", KIND_HW,
     "hbm_capacity=144GB hbm_bandwidth=4.9TB/s dram_capacity=480GB dram_bandwidth=512GB/s "
     "link_bandwidth=450GB/s",
     "NVIDIA GH200, 144 GB HBM3e at 4.9 TB/s; LPDDR5X and NVLink-C2C as gh200"},
    {"h100-pcie5", KIND_HW,
     "hbm_capacity=80GB hbm_bandwidth=3.35TB/s dram_capacity=2TB dram_bandwidth=307.2GB/s "
     "link_bandwidth=64GB/s",
     "H100 SXM5 80 GB HBM3; host DDR5 (2 TB, 8 x DDR5-4800) over PCIe Gen5 x16, 64 GB/s "
     "each way"},
    {"h100-cxl", KIND_HW,
     "hbm_capacity=80GB hbm_bandwidth=3.35TB/s dram_capacity=512GB dram_bandwidth=153.6GB/s "
     "link_bandwidth=64GB/s",
     "H100 SXM5 80 GB with a CXL 2.0 Type-3 expander: 512 GB, 4 x DDR5-4800, PCIe Gen5 x16 "
     "(illustrative)"},
    {"llama-3.1-8b", KIND_MODEL,
     "layers=" L31_8B_LAYERS " kv_heads=" L31_8B_KV_HEADS " head_dim=" L31_8B_HEAD_DIM
     " dtype_bytes=" L31_8B_DTYPE_BYTES " weight_bytes=" L31_8B_WEIGHT_BYTES,
     "Llama 3.1 8B, bf16: 32 layers, 8 KV heads x 128, 8.03B parameters"},
    {"llama-3.1-70b", KIND_MODEL,
     "layers=80 kv_heads=8 head_dim=128 dtype_bytes=2 weight_bytes=141107412992",
     "Llama 3.1 70B, bf16: 80 layers, 8 KV heads x 128, 70.55B parameters"},
    {"mistral-7b", KIND_MODEL,
     "layers=32 kv_heads=8 head_dim=128 dtype_bytes=2 weight_bytes=14496047104",
     "Mistral 7B v0.3, bf16: 32 layers, 8 KV heads x 128, 7.25B parameters"},
    {"qwen2.5-7b", KIND_MODEL,
     "layers=28 kv_heads=4 head_dim=128 dtype_bytes=2 weight_bytes=15231233024",
     "Qwen2.5 7B, bf16: 28 layers, 4 KV heads x 128, 7.62B parameters"},
    {"qwen2.5-72b", KIND_MODEL,
     "layers=80 kv_heads=8 head_dim=128 dtype_bytes=2 weight_bytes=145412407296",
     "Qwen2.5 72B, bf16: 80 layers, 8 KV heads x 128, 72.71B parameters"},
};
#define NPRESETS (sizeof presets / sizeof *presets)

const kvp_preset *kvp_presets(size_t *count)
{
    if (count)
        *count = NPRESETS;
    return presets;
}

static const kvp_preset *find(const char *name, const char *kind)
{
    for (size_t i = 0; i < NPRESETS; i++)
        if (strcmp(presets[i].name, name) == 0 && (!kind || strcmp(presets[i].kind, kind) == 0))
            return &presets[i];
    return NULL;
}

static const char *kind_word(const char *kind)
{
    return strcmp(kind, KIND_HW) == 0 ? "hardware" : "model";
}

/* Keeps the tail of a long file path: the file name is what tells runs apart. */
static void set_name(char *dst, size_t len, const char *src)
{
    size_t n = strlen(src);
    if (n < len)
        snprintf(dst, len, "%s", src);
    else
        snprintf(dst, len, "...%s", src + n - (len - 4));
}

static int apply(kvp_scenario *sc, const kvp_preset *p, kvp_error *err)
{
    kvp_scenario tmp = *sc;
    char one[ASSIGN_MAX];
    const char *s = p->assignments;
    for (;;) {
        s += strspn(s, " ");
        size_t n = strcspn(s, " ");
        if (n == 0)
            break;
        if (n >= sizeof one)
            return kvp_error_set(err, KVP_EINVAL, "preset %s: assignment too long", p->name);
        memcpy(one, s, n);
        one[n] = '\0';
        kvp_error e;
        int rc = kvp_param_assign(&tmp, one, &e);
        if (rc < 0)
            return kvp_error_set(err, rc, "preset %s: %s", p->name, e.msg);
        s += n;
    }
    if (strcmp(p->kind, KIND_HW) == 0)
        set_name(tmp.hw_name, sizeof tmp.hw_name, p->name);
    else
        set_name(tmp.model_name, sizeof tmp.model_name, p->name);
    *sc = tmp;
    return 0;
}

/* Names of the presets of a kind (NULL: all), comma separated. */
static void known_names(char *buf, size_t len, const char *kind)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < NPRESETS && used < len; i++) {
        if (kind && strcmp(presets[i].kind, kind) != 0)
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", presets[i].name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static int check_kind(const char *kind, kvp_error *err)
{
    if (kind && strcmp(kind, KIND_HW) != 0 && strcmp(kind, KIND_MODEL) != 0)
        return kvp_error_set(err, KVP_EINVAL, "unknown preset kind \"%s\" (hw or model)", kind);
    return 0;
}

int kvp_preset_apply_builtin(kvp_scenario *sc, const char *name, const char *kind,
                             kvp_error *err)
{
    char names[NAMES_MAX];
    int rc = check_kind(kind, err);
    if (rc < 0)
        return rc;
    const kvp_preset *p = find(name, kind);
    if (p)
        return apply(sc, p, err);
    if (kind && (p = find(name, NULL)) != NULL)
        return kvp_error_set(err, KVP_EINVAL, "\"%s\" is a %s preset, not a %s preset", name,
                             kind_word(p->kind), kind_word(kind));
    known_names(names, sizeof names, kind);
    return kvp_error_set(err, KVP_EINVAL, "unknown %s%spreset \"%s\" (known: %s)",
                         kind ? kind_word(kind) : "", kind ? " " : "", name, names);
}

/* 1 if any parameter of the group differs between a and b. */
static int group_changed(const kvp_scenario *a, const kvp_scenario *b, const char *group)
{
    size_t np;
    const kvp_param_info *ps = kvp_params(&np);
    for (size_t i = 0; i < np; i++) {
        char va[64], vb[64];
        if (strcmp(ps[i].group, group) != 0)
            continue;
        if (kvp_param_format(a, &ps[i], va, sizeof va) < 0 ||
            kvp_param_format(b, &ps[i], vb, sizeof vb) < 0 || strcmp(va, vb) != 0)
            return 1;
    }
    return 0;
}

int kvp_preset_apply(kvp_scenario *sc, const char *name, const char *kind, kvp_error *err)
{
    int rc = check_kind(kind, err);
    if (rc < 0)
        return rc;
    if (!name || !*name)
        return kvp_error_set(err, KVP_EINVAL, "empty %s preset name",
                             kind ? kind_word(kind) : "");
    if (find(name, NULL))
        return kvp_preset_apply_builtin(sc, name, kind, err);
    FILE *f = fopen(name, "r");
    if (!f) /* a name with a '/' was meant as a file: say why it cannot be read */
        return strchr(name, '/') ? kvp_config_load(sc, name, err)
                                 : kvp_preset_apply_builtin(sc, name, kind, err);
    fclose(f);
    kvp_scenario tmp = *sc;
    if ((rc = kvp_config_load(&tmp, name, err)) < 0)
        return rc;
    /* kind NULL: the file names whichever side it set */
    if (kind ? strcmp(kind, KIND_HW) == 0 : group_changed(sc, &tmp, "hardware"))
        set_name(tmp.hw_name, sizeof tmp.hw_name, name);
    if (kind ? strcmp(kind, KIND_MODEL) == 0 : group_changed(sc, &tmp, "model"))
        set_name(tmp.model_name, sizeof tmp.model_name, name);
    *sc = tmp;
    return 0;
}

int kvp_preset_modified(const kvp_scenario *sc, const char *kind, const kvp_param_info **out,
                        size_t max)
{
    const char *name = strcmp(kind, KIND_HW) == 0 ? sc->hw_name : sc->model_name;
    const char *group = strcmp(kind, KIND_HW) == 0 ? "hardware" : "model";
    kvp_scenario base;
    kvp_error err;
    if (!name[0])
        return 0;
    kvp_scenario_default(&base);
    if (kvp_preset_apply(&base, name, kind, &err) < 0)
        return KVP_EINVAL;
    size_t np, n = 0;
    const kvp_param_info *ps = kvp_params(&np);
    for (size_t i = 0; i < np; i++) {
        char va[64], vb[64];
        if (strcmp(ps[i].group, group) != 0)
            continue;
        if (kvp_param_format(sc, &ps[i], va, sizeof va) < 0 ||
            kvp_param_format(&base, &ps[i], vb, sizeof vb) < 0 || strcmp(va, vb) != 0) {
            if (n < max)
                out[n] = &ps[i];
            n++;
        }
    }
    return (int)n;
}
