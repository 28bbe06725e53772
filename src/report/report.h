/* The JSON objects of a scenario and of a result, shared by `run`'s report (report.c) and
 * the study's (cli/study_report.c), so that both name and order every key alike. */
#ifndef KVP_REPORT_H
#define KVP_REPORT_H

#include "kvplace.h"

#include <cjson/cJSON.h>

/* NULL on failure (err says why). */
cJSON *kvp_json_scenario(const kvp_scenario *sc, kvp_error *err);
cJSON *kvp_json_result(const kvp_scenario *sc, const kvp_result *r, kvp_error *err);

#endif
