// dv_json.h: reading JSON files (HF config.json and friends) with cJSON, with errors that name the
// file and the key.
#ifndef DV_JSON_H
#define DV_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Parses the file at `path` into *out (free with cJSON_Delete). Missing file -> DV_ENOTFOUND;
// malformed JSON -> DV_EFORMAT naming the path and the byte offset of the error.
int dv_json_load(const char *path, cJSON **out);
// Parses `len` bytes at `text` (need not be NUL-terminated; only whitespace may follow the value).
// Malformed -> DV_EFORMAT "WHAT: malformed JSON at byte N (line L, column C)".
int dv_json_parse(const char *text, size_t len, const char *what, cJSON **out);
// Typed getters. `what` names the file for messages. When the key is absent: *_opt return 0 and keep
// *out as given (the default); the plain forms return DV_EFORMAT ("config.json: missing
// 'hidden_size'"). A present key of the wrong type or out-of-range value is always DV_EFORMAT.
// A JSON null counts as absent for the *_opt forms (HF configs write "sliding_window": null).
// Integers must be whole numbers within +-2^53 (exact in the double cJSON stores).
int dv_json_get_int(const cJSON *obj, const char *key, const char *what, int64_t *out);
int dv_json_get_int_opt(const cJSON *obj, const char *key, const char *what, int64_t *out);
int dv_json_get_double(const cJSON *obj, const char *key, const char *what, double *out);
int dv_json_get_double_opt(const cJSON *obj, const char *key, const char *what, double *out);
int dv_json_get_bool_opt(const cJSON *obj, const char *key, const char *what, int *out);
// Returns the string value or NULL when absent or not a string (no error set).
const char *dv_json_get_string(const cJSON *obj, const char *key);

#ifdef __cplusplus
}
#endif
#endif
