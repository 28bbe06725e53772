/* Internal: the built-in presets (src/scenario/presets.c), for the config reader. */
#ifndef KVP_PRESETS_H
#define KVP_PRESETS_H

#include "kvplace.h"

#define KVP_PRESET_HW "hw"
#define KVP_PRESET_MODEL "model"

/* Applies a built-in preset only (no config files, so a config file's "hw =" cannot include
 * another file).  kind: KVP_PRESET_HW, KVP_PRESET_MODEL or NULL (either). */
int kvp_preset_apply_builtin(kvp_scenario *sc, const char *name, const char *kind,
                             kvp_error *err);
/* 1 if name is a built-in preset of either kind. */
int kvp_preset_is_builtin(const char *name);
/* 0 if kind is NULL, "hw" or "model"; else KVP_EINVAL with a message. */
int kvp_preset_check_kind(const char *kind, kvp_error *err);
/* "hardware" or "model", for messages. */
const char *kvp_preset_kind_word(const char *kind);
/* Copies a preset's name or file path into a scenario's name field, keeping the tail of a
 * path too long for it (the file name is what tells runs apart). */
void kvp_preset_set_name(char *dst, size_t len, const char *src);

#endif
