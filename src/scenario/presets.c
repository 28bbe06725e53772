/*
 * Presets: named machines and models, each a list of assignments applied with
 * kvp_param_assign.  docs/presets.md gives every number's source and says which are
 * approximations.
 */
#include "scenario/presets.h"
#include "base/error.h"
#include "scenario/defaults.h"

#include <stdio.h>
#include <string.h>

#define ASSIGN_MAX 128 /* longest single assignment in a preset string */
#define NAMES_MAX 400  /* room for the list of known names in a message */

/* Hardware: HBM and off-package DRAM as the datasheets print them (decimal GB), bandwidths
 * at their peak.  Models: bf16 weights = parameters x 2, parameters counted from config.json
 * (embeddings and an untied output head included: docs/MODEL.md §1 counts all the weights). */
static const kvp_preset presets[] = {
    {"gh200-paper", KVP_PRESET_HW,
     "hbm_capacity=" STUDY_HBM_CAPACITY " hbm_bandwidth=" STUDY_HBM_BANDWIDTH
     " dram_capacity=" STUDY_DRAM_CAPACITY " dram_bandwidth=" STUDY_DRAM_BANDWIDTH
     " link_bandwidth=" STUDY_LINK_BANDWIDTH,
     "GH200 as the study modelled it (Fang et al. 2025, arXiv 2508.13231, Table I): HBM cut "
     "to 24 GB, link 900 GB/s"},
    {"gh200", KVP_PRESET_HW,
     "hbm_capacity=96GB hbm_bandwidth=4TB/s dram_capacity=480GB dram_bandwidth=512GB/s "
     "link_bandwidth=450GB/s",
     "NVIDIA GH200, 96 GB HBM3 at 4 TB/s; 480 GB LPDDR5X at 512 GB/s; NVLink-C2C 450 GB/s "
     "each way"},
    {"gh200-144", KVP_PRESET_HW,
     "hbm_capacity=144GB hbm_bandwidth=4.9TB/s dram_capacity=480GB dram_bandwidth=512GB/s "
     "link_bandwidth=450GB/s",
     "NVIDIA GH200, 144 GB HBM3e at 4.9 TB/s; LPDDR5X and NVLink-C2C as gh200"},
    {"h100-pcie5", KVP_PRESET_HW,
     "hbm_capacity=80GB hbm_bandwidth=3.35TB/s dram_capacity=2TB dram_bandwidth=307.2GB/s "
     "link_bandwidth=64GB/s",
     "H100 SXM5 80 GB HBM3; host DDR5 (2 TB, 8 x DDR5-4800) over PCIe Gen5 x16, 64 GB/s "
     "each way"},
    {"h100-cxl", KVP_PRESET_HW,
     "hbm_capacity=80GB hbm_bandwidth=3.35TB/s dram_capacity=512GB dram_bandwidth=153.6GB/s "
     "link_bandwidth=64GB/s",
     "H100 SXM5 80 GB with a CXL 2.0 Type-3 expander: 512 GB, 4 x DDR5-4800, PCIe Gen5 x16 "
     "(illustrative)"},
    /* Tiers beyond two (docs/presets.md "Tiers beyond two"). */
    {"x86-h100-cxl", KVP_PRESET_HW,
     "hbm_capacity=80GB hbm_bandwidth=3.35TB/s dram_capacity=1TB dram_bandwidth=307.2GB/s "
     "link_bandwidth=64GB/s tiers=3 tier2_capacity=1024GB tier2_bandwidth=144GB/s "
     "tier2_link=1",
     "x86 server, H100 SXM5 80 GB; host DDR5 1 TB (8 x DDR5-4800) and a CXL tier (4 x Micron "
     "CZ120 256 GB, 36 GB/s each) behind one PCIe Gen5 x16 link"},
    {"x86-h100-cxl-nvme", KVP_PRESET_HW,
     "hbm_capacity=80GB hbm_bandwidth=3.35TB/s dram_capacity=1TB dram_bandwidth=307.2GB/s "
     "link_bandwidth=64GB/s tiers=4 tier2_capacity=1024GB tier2_bandwidth=144GB/s "
     "tier2_link=1 tier3_capacity=61.44TB tier3_bandwidth=52GB/s tier3_link=1",
     "x86-h100-cxl with NVMe as a fourth tier: 4 x Samsung PM1743 15.36 TB (13 GB/s read "
     "each), reached over the same PCIe link (GPUDirect Storage)"},
    {"x86-h200-cxl-nvme", KVP_PRESET_HW,
     "hbm_capacity=141GB hbm_bandwidth=4.8TB/s dram_capacity=1TB dram_bandwidth=307.2GB/s "
     "link_bandwidth=64GB/s tiers=4 tier2_capacity=1024GB tier2_bandwidth=144GB/s "
     "tier2_link=1 tier3_capacity=61.44TB tier3_bandwidth=52GB/s tier3_link=1",
     "x86-h100-cxl-nvme with an H200 (141 GB HBM3e at 4.8 TB/s)"},
    {"gh200-measured", KVP_PRESET_HW,
     "hbm_capacity=96GB hbm_bandwidth=3.4TB/s dram_capacity=480GB dram_bandwidth=486GB/s "
     "link_bandwidth=375GB/s link1_down_bandwidth=297GB/s",
     "GH200 96 GB as measured (Schieffer et al. 2024): HBM3 3.4 TB/s, LPDDR5X 486 GB/s, "
     "NVLink-C2C 375 GB/s to the GPU, 297 GB/s from it"},
    {"gh200-measured-nvme", KVP_PRESET_HW,
     "hbm_capacity=96GB hbm_bandwidth=3.4TB/s dram_capacity=480GB dram_bandwidth=486GB/s "
     "link_bandwidth=375GB/s link1_down_bandwidth=297GB/s tiers=3 tier2_capacity=61.44TB "
     "tier2_bandwidth=52GB/s tier2_link=1",
     "gh200-measured with NVMe below LPDDR5X: 4 x Samsung PM1743 15.36 TB on Grace's PCIe, "
     "reaching the GPU over NVLink-C2C (GPUDirect Storage)"},
    {"llama-3.1-8b", KVP_PRESET_MODEL,
     "layers=" L31_8B_LAYERS " kv_heads=" L31_8B_KV_HEADS " head_dim=" L31_8B_HEAD_DIM
     " dtype_bytes=" L31_8B_DTYPE_BYTES " weight_bytes=" L31_8B_WEIGHT_BYTES,
     "Llama 3.1 8B, bf16: 32 layers, 8 KV heads x 128, 8.03B parameters"},
    {"llama-3.1-70b", KVP_PRESET_MODEL,
     "layers=80 kv_heads=8 head_dim=128 dtype_bytes=2 weight_bytes=141107412992",
     "Llama 3.1 70B, bf16: 80 layers, 8 KV heads x 128, 70.55B parameters"},
    {"mistral-7b", KVP_PRESET_MODEL,
     "layers=32 kv_heads=8 head_dim=128 dtype_bytes=2 weight_bytes=14496047104",
     "Mistral 7B v0.3, bf16: 32 layers, 8 KV heads x 128, 7.25B parameters"},
    {"qwen2.5-7b", KVP_PRESET_MODEL,
     "layers=28 kv_heads=4 head_dim=128 dtype_bytes=2 weight_bytes=15231233024",
     "Qwen2.5 7B, bf16: 28 layers, 4 KV heads x 128, 7.62B parameters"},
    {"qwen2.5-72b", KVP_PRESET_MODEL,
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

const char *kvp_preset_kind_word(const char *kind)
{
    return strcmp(kind, KVP_PRESET_HW) == 0 ? "hardware" : "model";
}

/* Keeps the tail of a long file path: the file name is what tells runs apart. */
void kvp_preset_set_name(char *dst, size_t len, const char *src)
{
    size_t n = strlen(src);
    if (n < len)
        snprintf(dst, len, "%s", src);
    else
        snprintf(dst, len, "...%s", src + n - (len - 4));
}

/* A hardware preset describes the whole machine: the tiers and links of one applied before
 * it do not stay behind (their parameters go back to the table's defaults). */
static void reset_tiers(kvp_scenario *sc)
{
    size_t n;
    const kvp_param_info *ps = kvp_params(&n);
    for (size_t i = 0; i < n; i++) {
        unsigned k;
        if (strcmp(ps[i].name, "tiers") == 0 || sscanf(ps[i].name, "tier%u_", &k) == 1 ||
            sscanf(ps[i].name, "link%u_", &k) == 1)
            kvp_param_set(sc, ps[i].name, ps[i].deflt, NULL);
    }
}

static int apply(kvp_scenario *sc, const kvp_preset *p, kvp_error *err)
{
    kvp_scenario tmp = *sc;
    char one[ASSIGN_MAX];
    if (strcmp(p->kind, KVP_PRESET_HW) == 0)
        reset_tiers(&tmp);
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
    if (strcmp(p->kind, KVP_PRESET_HW) == 0)
        kvp_preset_set_name(tmp.hw_name, sizeof tmp.hw_name, p->name);
    else
        kvp_preset_set_name(tmp.model_name, sizeof tmp.model_name, p->name);
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

int kvp_preset_check_kind(const char *kind, kvp_error *err)
{
    if (kind && strcmp(kind, KVP_PRESET_HW) != 0 && strcmp(kind, KVP_PRESET_MODEL) != 0)
        return kvp_error_set(err, KVP_EINVAL, "unknown preset kind \"%s\" (hw or model)", kind);
    return 0;
}

int kvp_preset_apply_builtin(kvp_scenario *sc, const char *name, const char *kind,
                             kvp_error *err)
{
    char names[NAMES_MAX];
    int rc = kvp_preset_check_kind(kind, err);
    if (rc < 0)
        return rc;
    const kvp_preset *p = find(name, kind);
    if (p)
        return apply(sc, p, err);
    if (kind && (p = find(name, NULL)) != NULL)
        return kvp_error_set(err, KVP_EINVAL, "\"%s\" is a %s preset, not a %s preset", name,
                             kvp_preset_kind_word(p->kind), kvp_preset_kind_word(kind));
    known_names(names, sizeof names, kind);
    const char *cand[NPRESETS];
    size_t nc = 0;
    for (size_t i = 0; i < NPRESETS; i++)
        if (!kind || strcmp(presets[i].kind, kind) == 0)
            cand[nc++] = presets[i].name;
    const char *s = kvp_closest_name(name, cand, nc);
    if (s)
        return kvp_error_set(err, KVP_EINVAL, "unknown %s%spreset \"%s\" (did you mean \"%s\"? "
                             "known: %s)", kind ? kvp_preset_kind_word(kind) : "",
                             kind ? " " : "", name, s, names);
    return kvp_error_set(err, KVP_EINVAL, "unknown %s%spreset \"%s\" (known: %s)",
                         kind ? kvp_preset_kind_word(kind) : "", kind ? " " : "", name, names);
}

int kvp_preset_is_builtin(const char *name) { return find(name, NULL) != NULL; }

