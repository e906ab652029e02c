// dv_json.c: JSON files (config.json, preprocessor_config.json, safetensors headers) parsed with cJSON,
// plus typed getters whose errors name the file, the key and what was wrong.
#include "core/dv_json.h"

#include "core/dv_error.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// ---- parsing ----

// Parses buf[start, len) and reports errors as offsets into the whole of buf (so a skipped BOM still
// counts, and the byte number matches what `head -c` or an editor shows).
static int json_parse_range(const char *buf, size_t start, size_t len, const char *what, cJSON **out) {
    *out = NULL;
    const char *end = NULL;
    cJSON *root = NULL;
    if (len > start) // cJSON rejects an empty buffer itself, but without setting `end`
        root = cJSON_ParseWithLengthOpts(buf + start, len - start, &end, 0);
    size_t err = len; // offset of the first bad byte
    if (!root) {
        err = end ? (size_t)(end - buf) : start;
    } else {
        // require_null_terminated would need a NUL inside `len`; check the tail by hand instead so
        // that trailing garbage (or an embedded NUL) is still an error
        size_t i = (size_t)(end - buf);
        while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r')) i++;
        if (i < len) err = i;
    }
    if (err < len || !root) {
        cJSON_Delete(root);
        size_t line = 1, col = 1;
        for (size_t i = 0; i < err && i < len; i++) {
            if (buf[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        return dv_error_set(DV_EFORMAT, "%s: malformed JSON at byte %zu (line %zu, column %zu)", what, err,
                            line, col);
    }
    *out = root;
    return 0;
}

int dv_json_parse(const char *text, size_t len, const char *what, cJSON **out) {
    DV_ASSERT(out && what && (text || len == 0));
    return json_parse_range(text, 0, len, what, out);
}

// Reads the whole file into a heap buffer (*buf, *len); errors name the path.
static int json_read_file(const char *path, char **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return dv_error_set(e == ENOENT || e == ENOTDIR ? DV_ENOTFOUND : DV_EIO, "%s: cannot open (%s)", path,
                            strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return dv_error_set(DV_EIO, "%s: cannot stat (%s)", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return dv_error_set(DV_EIO, "%s: is a directory, expected a JSON file", path);
    }
    // st_size is a hint (0 for pipes); grow until read() reports EOF
    size_t cap = (st.st_size > 0 ? (size_t)st.st_size : 4096) + 1, n = 0;
    char *p = malloc(cap);
    if (!p) goto nomem;
    for (;;) {
        if (n == cap) {
            char *q = realloc(p, cap * 2);
            if (!q) goto nomem;
            p = q;
            cap *= 2;
        }
        ssize_t r = read(fd, p + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(p);
            close(fd);
            return dv_error_set(DV_EIO, "%s: read failed (%s)", path, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    *buf = p;
    *len = n;
    return 0;
nomem:
    free(p);
    close(fd);
    return dv_error_set(DV_ENOMEM, "%s: out of memory reading the file", path);
}

int dv_json_load(const char *path, cJSON **out) {
    DV_ASSERT(path && out);
    *out = NULL;
    char *buf;
    size_t len;
    int rc = json_read_file(path, &buf, &len);
    if (rc < 0) return rc;
    // some Windows-made JSON files start with a UTF-8 byte order mark, which cJSON rejects
    size_t start = len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    rc = json_parse_range(buf, start, len, path, out);
    free(buf);
    return rc;
}

// ---- typed getters ----

static const char *json_type_name(const cJSON *it) {
    if (cJSON_IsNumber(it)) return "a number";
    if (cJSON_IsString(it)) return "a string";
    if (cJSON_IsBool(it)) return "a boolean";
    if (cJSON_IsNull(it)) return "null";
    if (cJSON_IsArray(it)) return "an array";
    if (cJSON_IsObject(it)) return "an object";
    return "invalid";
}

// Finds `key`: *it = NULL when absent (or null and `null_is_absent`). Errors when obj is not an object.
static int json_lookup(const cJSON *obj, const char *key, const char *what, int null_is_absent,
                       const cJSON **it) {
    DV_ASSERT(key && what && it);
    *it = NULL;
    if (!obj) return 0;
    if (!cJSON_IsObject(obj))
        return dv_error_set(DV_EFORMAT, "%s: expected an object holding '%s', found %s", what, key,
                            json_type_name(obj));
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v && null_is_absent && cJSON_IsNull(v)) v = NULL;
    *it = v;
    return 0;
}

// Integer check on cJSON's double: whole, and small enough that the double was exact.
static int json_to_int(const cJSON *it, const char *key, const char *what, int64_t *out) {
    if (!cJSON_IsNumber(it))
        return dv_error_set(DV_EFORMAT, "%s: '%s' is %s, expected an integer", what, key, json_type_name(it));
    double v = it->valuedouble;
    if (!isfinite(v) || floor(v) != v)
        return dv_error_set(DV_EFORMAT, "%s: '%s' is %g, expected an integer", what, key, v);
    if (fabs(v) > 9007199254740992.0) // 2^53: beyond it cJSON has already rounded the value
        return dv_error_set(DV_EFORMAT, "%s: '%s' = %g is out of range for an integer", what, key, v);
    *out = (int64_t)v;
    return 0;
}

static int json_get_int_impl(const cJSON *obj, const char *key, const char *what, int64_t *out, int opt) {
    DV_ASSERT(out);
    const cJSON *it;
    int rc = json_lookup(obj, key, what, opt, &it);
    if (rc < 0) return rc;
    if (!it) return opt ? 0 : dv_error_set(DV_EFORMAT, "%s: missing '%s'", what, key);
    return json_to_int(it, key, what, out);
}

int dv_json_get_int(const cJSON *obj, const char *key, const char *what, int64_t *out) {
    return json_get_int_impl(obj, key, what, out, 0);
}

int dv_json_get_int_opt(const cJSON *obj, const char *key, const char *what, int64_t *out) {
    return json_get_int_impl(obj, key, what, out, 1);
}

static int json_get_double_impl(const cJSON *obj, const char *key, const char *what, double *out, int opt) {
    DV_ASSERT(out);
    const cJSON *it;
    int rc = json_lookup(obj, key, what, opt, &it);
    if (rc < 0) return rc;
    if (!it) return opt ? 0 : dv_error_set(DV_EFORMAT, "%s: missing '%s'", what, key);
    if (!cJSON_IsNumber(it))
        return dv_error_set(DV_EFORMAT, "%s: '%s' is %s, expected a number", what, key, json_type_name(it));
    *out = it->valuedouble;
    return 0;
}

int dv_json_get_double(const cJSON *obj, const char *key, const char *what, double *out) {
    return json_get_double_impl(obj, key, what, out, 0);
}

int dv_json_get_double_opt(const cJSON *obj, const char *key, const char *what, double *out) {
    return json_get_double_impl(obj, key, what, out, 1);
}

int dv_json_get_bool_opt(const cJSON *obj, const char *key, const char *what, int *out) {
    DV_ASSERT(out);
    const cJSON *it;
    int rc = json_lookup(obj, key, what, 1, &it);
    if (rc < 0) return rc;
    if (!it) return 0;
    if (!cJSON_IsBool(it))
        return dv_error_set(DV_EFORMAT, "%s: '%s' is %s, expected true or false", what, key,
                            json_type_name(it));
    *out = cJSON_IsTrue(it) ? 1 : 0;
    return 0;
}

const char *dv_json_get_string(const cJSON *obj, const char *key) {
    if (!cJSON_IsObject(obj) || !key) return NULL;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}
