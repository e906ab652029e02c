// dv_safetensors.c: opens safetensors checkpoints (one file, a sharded index, or a folder holding
// either), validates every header entry against the file, and serves tensors by name straight out of
// the read-only maps; also writes single-file checkpoints atomically, streaming large tensors.
#include "core/dv_safetensors.h"

#include "core/dv_error.h"
#include "core/dv_fs.h"
#include "core/dv_json.h"
#include "core/dv_mmap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// A header beyond this is not a real checkpoint (HF headers are ~100 KB for ~1000 tensors); refusing
// it early avoids parsing gigabytes of garbage as JSON.
#define ST_MAX_HEADER ((uint64_t)100 << 20)
// Streaming buffer for dv_safetensors_write's fill callbacks.
#define ST_WRITE_CHUNK ((size_t)1 << 20)

typedef struct st_file {
    char *path;         // owned; dv_st_tensor.file points here
    char *shard;        // owned; the name the index uses for it (NULL for a single file)
    dv_mmap map;        // the whole file
    cJSON *header;      // owned; tensor names and metadata strings point into it
    const cJSON *meta;  // the "__metadata__" object inside header, or NULL
} st_file;

struct dv_safetensors {
    char *path;             // owned; what the caller opened (file, index or folder), for messages
    st_file *files;         // (n_files)
    int n_files, cap_files;
    dv_st_tensor *tensors;  // (n_tensors), per file in data-offset order
    int n_tensors, cap_tensors;
    const dv_st_tensor **by_name; // (n_tensors) into tensors, sorted by name, for binary search
    size_t total_bytes;
};

// ---- small helpers ----

static char *st_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

// malloc'd printf; NULL on allocation failure.
static char *st_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *st_asprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *p = malloc((size_t)n + 1);
    if (!p) return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

static int st_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

// "(a, b, c)" into buf; negative dims (wildcards in expectations) print as "*".
static const char *st_shape_str(char *buf, size_t cap, int n_dims, const int64_t *shape) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "(");
    for (int i = 0; i < n_dims && o < cap; i++) {
        if (shape[i] < 0)
            o += (size_t)snprintf(buf + o, cap - o, "%s*", i ? ", " : "");
        else
            o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    }
    if (o < cap) snprintf(buf + o, cap - o, ")");
    return buf;
}

// safetensors dtypes that are valid in the format but that duovid has no kernels for.
static int st_dtype_is_foreign(const char *s) {
    static const char *const names[] = {"F64",  "I8",      "I16",     "U16",     "U32",     "U64", "BOOL",
                                        "C64",  "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4",      "F6_E2M3",
                                        "F6_E3M2"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i]) == 0) return 1;
    return 0;
}

// A non-negative whole JSON number that fits the 2^53 doubles represent exactly; -1 otherwise.
static int64_t st_json_u53(const cJSON *v) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || (double)(int64_t)d != d) return -1;
    return (int64_t)d;
}

// ---- reading one file ----

// One header entry while it is being validated.
typedef struct st_entry {
    const char *name;
    dv_dtype dtype;
    int n_dims;
    int64_t shape[DV_ST_MAX_DIMS];
    uint64_t begin, end; // relative to the data block
} st_entry;

static int st_entry_cmp_begin(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

// Validates one tensor entry `it` (named it->string) of file `path` into *e.
static int st_entry_parse(const char *path, const cJSON *it, uint64_t data_size, st_entry *e) {
    const char *name = it->string;
    e->name = name;
    if (!cJSON_IsObject(it))
        return dv_error_set(DV_EFORMAT, "%s: header entry is not an object (tensor '%s')", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    if (!dt || !sh || !off)
        return dv_error_set(DV_EFORMAT, "%s: missing '%s' (tensor '%s')", path,
                            !dt ? "dtype" : !sh ? "shape" : "data_offsets", name);
    if (!cJSON_IsString(dt))
        return dv_error_set(DV_EFORMAT, "%s: 'dtype' is not a string (tensor '%s')", path, name);
    if (!cJSON_IsArray(sh))
        return dv_error_set(DV_EFORMAT, "%s: 'shape' is not an array (tensor '%s')", path, name);
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return dv_error_set(DV_EFORMAT, "%s: 'data_offsets' is not an array of two offsets (tensor '%s')",
                            path, name);

    int t = dv_dtype_from_name(dt->valuestring);
    if (t < 0) {
        if (st_dtype_is_foreign(dt->valuestring))
            return dv_error_set(DV_EUNSUPPORTED, "%s: unsupported dtype '%s' (tensor '%s')", path,
                                dt->valuestring, name);
        return dv_error_set(DV_EFORMAT, "%s: unknown dtype '%s' (tensor '%s')", path, dt->valuestring, name);
    }
    e->dtype = (dv_dtype)t;

    int nd = cJSON_GetArraySize(sh);
    if (nd > DV_ST_MAX_DIMS)
        return dv_error_set(DV_EUNSUPPORTED, "%s: %d dimensions, at most %d are supported (tensor '%s')", path,
                            nd, DV_ST_MAX_DIMS, name);
    uint64_t nelem = 1;
    int i = 0;
    for (const cJSON *d = sh->child; d; d = d->next, i++) {
        if (!cJSON_IsNumber(d))
            return dv_error_set(DV_EFORMAT, "%s: shape holds a non-number (tensor '%s')", path, name);
        if (d->valuedouble < 0)
            return dv_error_set(DV_EFORMAT, "%s: negative dimension %g in shape (tensor '%s')", path,
                                d->valuedouble, name);
        int64_t v = st_json_u53(d);
        if (v < 0)
            return dv_error_set(DV_EFORMAT, "%s: dimension %g is not a whole number below 2^53 (tensor '%s')",
                                path, d->valuedouble, name);
        e->shape[i] = v;
        if (__builtin_mul_overflow(nelem, (uint64_t)v, &nelem))
            return dv_error_set(DV_EFORMAT, "%s: shape overflows 64 bits (tensor '%s')", path, name);
    }
    e->n_dims = nd;
    uint64_t nbytes;
    if (__builtin_mul_overflow(nelem, (uint64_t)dv_dtype_size(e->dtype), &nbytes))
        return dv_error_set(DV_EFORMAT, "%s: shape overflows 64 bits (tensor '%s')", path, name);

    int64_t b = st_json_u53(off->child), en = st_json_u53(off->child->next);
    if (b < 0 || en < 0)
        return dv_error_set(DV_EFORMAT, "%s: 'data_offsets' are not non-negative integers (tensor '%s')",
                            path, name);
    e->begin = (uint64_t)b;
    e->end = (uint64_t)en;
    if (e->begin > e->end)
        return dv_error_set(DV_EFORMAT, "%s: data_offsets begin %llu > end %llu (tensor '%s')", path,
                            (unsigned long long)e->begin, (unsigned long long)e->end, name);
    if (e->end > data_size)
        return dv_error_set(DV_EFORMAT,
                            "%s: data_offsets end %llu is beyond the data block (%llu bytes) (tensor '%s')",
                            path, (unsigned long long)e->end, (unsigned long long)data_size, name);
    if (e->end - e->begin != nbytes) {
        char sb[160];
        return dv_error_set(DV_EFORMAT, "%s: %llu data bytes, but %s shape %s needs %llu (tensor '%s')", path,
                            (unsigned long long)(e->end - e->begin), dv_dtype_name(e->dtype),
                            st_shape_str(sb, sizeof sb, e->n_dims, e->shape), (unsigned long long)nbytes,
                            name);
    }
    return 0;
}

static int st_push_tensor(dv_safetensors *st, const dv_st_tensor *t) {
    if (st->n_tensors == st->cap_tensors) {
        int cap = st->cap_tensors ? st->cap_tensors * 2 : 256;
        dv_st_tensor *p = realloc(st->tensors, (size_t)cap * sizeof *p);
        if (!p) return DV_ENOMEM;
        st->tensors = p;
        st->cap_tensors = cap;
    }
    st->tensors[st->n_tensors++] = *t;
    return 0;
}

// Maps and validates f->path, appending its tensors to st (in data-offset order).
static int st_file_load(dv_safetensors *st, st_file *f) {
    const char *path = f->path;
    st_entry *ents = NULL;
    char *what = NULL;
    int rc = dv_mmap_open(path, &f->map);
    if (rc < 0) return rc;
    const uint8_t *base = f->map.data;
    size_t size = f->map.size;
    if (size < 8)
        return dv_error_set(DV_EFORMAT, "%s: %zu bytes is too short for a safetensors file (needs an 8-byte "
                                        "header length)", path, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | base[i]; // little-endian on any host
    if (hlen == 0) return dv_error_set(DV_EFORMAT, "%s: header length is 0", path);
    if (hlen > ST_MAX_HEADER)
        return dv_error_set(DV_EFORMAT, "%s: header length %llu is absurdly large (limit %llu); not a "
                                        "safetensors file?", path, (unsigned long long)hlen,
                            (unsigned long long)ST_MAX_HEADER);
    if (hlen > size - 8)
        return dv_error_set(DV_EFORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)",
                            path, (unsigned long long)hlen, size);
    const uint8_t *data = base + 8 + hlen; // the data block: (size - 8 - hlen) bytes
    uint64_t data_size = size - 8 - hlen;

    what = st_asprintf("%s: header", path);
    if (!what) return dv_error_set(DV_ENOMEM, "%s: out of memory", path);
    rc = dv_json_parse((const char *)base + 8, (size_t)hlen, what, &f->header);
    free(what);
    if (rc < 0) return rc;
    if (!cJSON_IsObject(f->header)) return dv_error_set(DV_EFORMAT, "%s: header is not a JSON object", path);

    int n = 0;
    for (const cJSON *it = f->header->child; it; it = it->next) n++;
    ents = calloc(n ? (size_t)n : 1, sizeof *ents);
    if (!ents) return dv_error_set(DV_ENOMEM, "%s: out of memory for %d header entries", path, n);
    int ne = 0;
    for (const cJSON *it = f->header->child; it; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(it)) {
                rc = dv_error_set(DV_EFORMAT, "%s: '__metadata__' is not an object", path);
                goto fail;
            }
            for (const cJSON *kv = it->child; kv; kv = kv->next)
                if (!cJSON_IsString(kv)) {
                    rc = dv_error_set(DV_EFORMAT, "%s: __metadata__ value for '%s' is not a string", path,
                                      kv->string);
                    goto fail;
                }
            f->meta = it;
            continue;
        }
        rc = st_entry_parse(path, it, data_size, &ents[ne]);
        if (rc < 0) goto fail;
        ne++;
    }

    // overlap: in begin order, every non-empty tensor must start at or after the furthest end so far
    qsort(ents, (size_t)ne, sizeof *ents, st_entry_cmp_begin);
    uint64_t max_end = 0;
    const char *max_name = NULL;
    for (int i = 0; i < ne; i++) {
        if (ents[i].end == ents[i].begin) continue; // zero bytes overlap nothing
        if (max_name && ents[i].begin < max_end) {
            rc = dv_error_set(DV_EFORMAT, "%s: data overlaps that of tensor '%s' (tensor '%s')", path,
                              max_name, ents[i].name);
            goto fail;
        }
        max_end = ents[i].end;
        max_name = ents[i].name;
    }

    for (int i = 0; i < ne; i++) {
        dv_st_tensor t = {.name = ents[i].name, .dtype = ents[i].dtype, .n_dims = ents[i].n_dims,
                          .data = data + ents[i].begin, .nbytes = (size_t)(ents[i].end - ents[i].begin),
                          .file = path};
        memcpy(t.shape, ents[i].shape, sizeof t.shape);
        if (st_push_tensor(st, &t) < 0) {
            rc = dv_error_set(DV_ENOMEM, "%s: out of memory for the tensor table", path);
            goto fail;
        }
        st->total_bytes += t.nbytes;
    }
    free(ents);
    return 0;
fail:
    free(ents);
    return rc;
}

// Appends an empty st_file for `path` (and `shard`, may be NULL); returns its index or <0.
static int st_add_file(dv_safetensors *st, const char *path, const char *shard) {
    if (st->n_files == st->cap_files) {
        int cap = st->cap_files ? st->cap_files * 2 : 4;
        st_file *p = realloc(st->files, (size_t)cap * sizeof *p);
        if (!p) return dv_error_set(DV_ENOMEM, "%s: out of memory", path);
        st->files = p;
        st->cap_files = cap;
    }
    st_file *f = &st->files[st->n_files];
    memset(f, 0, sizeof *f);
    f->path = st_strdup(path);
    f->shard = shard ? st_strdup(shard) : NULL;
    if (!f->path || (shard && !f->shard)) {
        free(f->path);
        free(f->shard);
        return dv_error_set(DV_ENOMEM, "%s: out of memory", path);
    }
    return st->n_files++;
}

// ---- the name index ----

static int st_by_name_cmp(const void *a, const void *b) {
    return strcmp((*(const dv_st_tensor *const *)a)->name, (*(const dv_st_tensor *const *)b)->name);
}

// Builds by_name and rejects duplicate names (within a file, or across shards).
static int st_build_index(dv_safetensors *st) {
    st->by_name = malloc((st->n_tensors ? (size_t)st->n_tensors : 1) * sizeof *st->by_name);
    if (!st->by_name) return dv_error_set(DV_ENOMEM, "%s: out of memory", st->path);
    // st->tensors no longer grows, so pointers into it stay valid
    for (int i = 0; i < st->n_tensors; i++) st->by_name[i] = &st->tensors[i];
    qsort(st->by_name, (size_t)st->n_tensors, sizeof *st->by_name, st_by_name_cmp);
    for (int i = 1; i < st->n_tensors; i++) {
        const dv_st_tensor *a = st->by_name[i - 1], *b = st->by_name[i];
        if (strcmp(a->name, b->name) == 0) {
            if (a->file == b->file)
                return dv_error_set(DV_EFORMAT, "%s: duplicate tensor name (tensor '%s')", a->file, a->name);
            return dv_error_set(DV_EFORMAT, "%s: tensor '%s' is in both '%s' and '%s'", st->path, a->name,
                                a->file, b->file);
        }
    }
    return 0;
}

// ---- opening ----

static int st_open_index(dv_safetensors *st, const char *index_path) {
    cJSON *root = NULL;
    char *dir = NULL, *shard_path = NULL;
    int *shard_of = NULL; // (n_map) file index the index names for each weight_map entry
    int rc = dv_json_load(index_path, &root);
    if (rc < 0) return rc;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        rc = dv_error_set(DV_EFORMAT, "%s: %s", index_path,
                          wm ? "'weight_map' is not an object" : "missing 'weight_map'");
        goto fail;
    }
    int n_map = cJSON_GetArraySize(wm);
    if (n_map == 0) {
        rc = dv_error_set(DV_EFORMAT, "%s: 'weight_map' is empty", index_path);
        goto fail;
    }
    // shards are named relative to the folder holding the index
    const char *slash = strrchr(index_path, '/');
    dir = slash ? st_asprintf("%.*s", (int)(slash - index_path), index_path) : st_strdup(".");
    shard_of = malloc((size_t)n_map * sizeof *shard_of);
    if (!dir || !shard_of) {
        rc = dv_error_set(DV_ENOMEM, "%s: out of memory", index_path);
        goto fail;
    }
    int k = 0;
    for (const cJSON *it = wm->child; it; it = it->next, k++) {
        if (!cJSON_IsString(it) || !it->valuestring[0]) {
            rc = dv_error_set(DV_EFORMAT, "%s: weight_map value is not a file name (tensor '%s')", index_path,
                              it->string);
            goto fail;
        }
        int fi = -1;
        for (int j = 0; j < st->n_files; j++) // a handful of shards: a linear scan is fine
            if (strcmp(st->files[j].shard, it->valuestring) == 0) fi = j;
        if (fi < 0) {
            shard_path = it->valuestring[0] == '/' ? st_strdup(it->valuestring)
                                                   : st_asprintf("%s/%s", dir, it->valuestring);
            if (!shard_path) {
                rc = dv_error_set(DV_ENOMEM, "%s: out of memory", index_path);
                goto fail;
            }
            fi = st_add_file(st, shard_path, it->valuestring);
            free(shard_path);
            shard_path = NULL;
            if (fi < 0) {
                rc = fi;
                goto fail;
            }
            rc = st_file_load(st, &st->files[fi]);
            if (rc < 0) {
                dv_error_prefix(rc, "%s", index_path);
                goto fail;
            }
        }
        shard_of[k] = fi;
    }
    rc = st_build_index(st);
    if (rc < 0) goto fail;

    // every tensor must be where the index says; count the ones that are not and name the first
    int n_bad = 0;
    const cJSON *first_bad = NULL;
    const dv_st_tensor *first_found = NULL;
    k = 0;
    for (const cJSON *it = wm->child; it; it = it->next, k++) {
        const dv_st_tensor *t = dv_safetensors_find(st, it->string);
        if (t && t->file == st->files[shard_of[k]].path) continue;
        if (!n_bad++) {
            first_bad = it;
            first_found = t;
        }
    }
    if (n_bad) {
        char more[64] = "";
        if (n_bad > 1) snprintf(more, sizeof more, " (%d more misplaced or missing)", n_bad - 1);
        if (first_found)
            rc = dv_error_set(DV_EFORMAT, "%s: tensor is in '%s', not in shard '%s' as the index says%s "
                                          "(tensor '%s')", index_path, first_found->file,
                              first_bad->valuestring, more, first_bad->string);
        else
            rc = dv_error_set(DV_EFORMAT, "%s: tensor is missing from shard '%s'%s (tensor '%s')", index_path,
                              first_bad->valuestring, more, first_bad->string);
        goto fail;
    }
    rc = 0;
fail:
    cJSON_Delete(root);
    free(dir);
    free(shard_of);
    return rc;
}

int dv_safetensors_open(const char *path, dv_safetensors **out) {
    DV_ASSERT(path && out);
    *out = NULL;
    char *index = NULL, *single = NULL;
    int rc;
    dv_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = st_strdup(path))) {
        free(st);
        return dv_error_set(DV_ENOMEM, "%s: out of memory", path);
    }
    const char *file = path; // what to open after resolving a folder
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        index = st_asprintf("%s/model.safetensors.index.json", path);
        single = st_asprintf("%s/model.safetensors", path);
        if (!index || !single) {
            rc = dv_error_set(DV_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
        if (stat(index, &sb) == 0 && !S_ISDIR(sb.st_mode))
            file = index;
        else if (stat(single, &sb) == 0 && !S_ISDIR(sb.st_mode))
            file = single;
        else {
            rc = dv_error_set(DV_ENOTFOUND, "%s: no model.safetensors or model.safetensors.index.json", path);
            goto fail;
        }
    }
    if (st_ends_with(file, ".json")) {
        rc = st_open_index(st, file);
    } else {
        rc = st_add_file(st, file, NULL);
        if (rc >= 0) rc = st_file_load(st, &st->files[rc]);
        if (rc >= 0) rc = st_build_index(st);
    }
    if (rc < 0) goto fail;
    free(index);
    free(single);
    *out = st;
    return 0;
fail:
    free(index);
    free(single);
    dv_safetensors_free(st);
    return rc;
}

void dv_safetensors_free(dv_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n_files; i++) {
        dv_mmap_close(&st->files[i].map);
        cJSON_Delete(st->files[i].header);
        free(st->files[i].path);
        free(st->files[i].shard);
    }
    free(st->files);
    free(st->tensors);
    free(st->by_name);
    free(st->path);
    free(st);
}

// ---- queries ----

int dv_safetensors_count(const dv_safetensors *st) { return st ? st->n_tensors : 0; }

const dv_st_tensor *dv_safetensors_at(const dv_safetensors *st, int i) {
    DV_ASSERT(st && i >= 0 && i < st->n_tensors);
    return &st->tensors[i];
}

const dv_st_tensor *dv_safetensors_find(const dv_safetensors *st, const char *name) {
    DV_ASSERT(st && name);
    if (!st->by_name) return NULL;
    int lo = 0, hi = st->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const dv_st_tensor *t = st->by_name[mid];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

int dv_safetensors_get(const dv_safetensors *st, const char *name, int n_dims, const int64_t *shape,
                       const dv_st_tensor **out) {
    DV_ASSERT(st && name && out && n_dims >= 0 && n_dims <= DV_ST_MAX_DIMS && (shape || n_dims == 0));
    *out = NULL;
    const dv_st_tensor *t = dv_safetensors_find(st, name);
    if (!t) return dv_error_set(DV_ENOTFOUND, "%s: missing tensor '%s'", st->path, name);
    int ok = t->n_dims == n_dims;
    for (int i = 0; ok && i < n_dims; i++) ok = shape[i] < 0 || shape[i] == t->shape[i];
    if (!ok) {
        char a[160], b[160];
        return dv_error_set(DV_ESHAPE, "%s: tensor '%s' has shape %s, expected %s", t->file, name,
                            st_shape_str(a, sizeof a, t->n_dims, t->shape), st_shape_str(b, sizeof b, n_dims, shape));
    }
    *out = t;
    return 0;
}

const char *dv_safetensors_metadata(const dv_safetensors *st, const char *key) {
    DV_ASSERT(st && key);
    for (int i = 0; i < st->n_files; i++) {
        const char *v = dv_json_get_string(st->files[i].meta, key);
        if (v) return v;
    }
    return NULL;
}

size_t dv_safetensors_total_bytes(const dv_safetensors *st) { return st ? st->total_bytes : 0; }

// ---- writing ----

// Growable header text; `oom` sticks so callers check once at the end.
typedef struct st_buf {
    char *p;
    size_t n, cap;
    int oom;
} st_buf;

static void st_buf_put(st_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->n + n + 1 > cap) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void st_buf_puts(st_buf *b, const char *s) { st_buf_put(b, s, strlen(s)); }

static void st_buf_printf(st_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void st_buf_printf(st_buf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    DV_ASSERT(n >= 0 && (size_t)n < sizeof tmp); // only used for numbers
    st_buf_put(b, tmp, (size_t)n);
}

// JSON string literal: quotes, backslashes and control bytes escaped; UTF-8 passes through.
static void st_buf_put_json_string(st_buf *b, const char *s) {
    st_buf_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            st_buf_put(b, e, 2);
        } else if (c < 0x20) {
            st_buf_printf(b, "\\u%04x", c);
        } else {
            st_buf_put(b, (const char *)s, 1);
        }
    }
    st_buf_put(b, "\"", 1);
}

static int st_cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// Writes all n bytes to the stream; 0 or errno.
static int st_write_all(FILE *f, const void *p, size_t n) {
    return fwrite(p, 1, n, f) == n ? 0 : (errno ? errno : EIO);
}

int dv_safetensors_write(const char *path, const dv_st_write_tensor *tensors, int n,
                         const char *const *meta_keys, const char *const *meta_values, int n_meta) {
    DV_ASSERT(path && n >= 0 && n_meta >= 0 && (tensors || n == 0) &&
              ((meta_keys && meta_values) || n_meta == 0));
    st_buf h = {0};
    const char **names = NULL;
    char *buf = NULL;
    size_t *nbytes = NULL; // (n) bytes per tensor
    dv_fs_atomic *out = NULL;
    FILE *fd = NULL;
    int rc = 0, err;

    // ---- validate everything before touching the disk ----
    nbytes = malloc((n ? (size_t)n : 1) * sizeof *nbytes);
    names = malloc((n ? (size_t)n : 1) * sizeof *names);
    if (!nbytes || !names) {
        rc = dv_error_set(DV_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        const dv_st_write_tensor *t = &tensors[i];
        DV_ASSERT(t->name);
        if (!t->name[0] || strcmp(t->name, "__metadata__") == 0) {
            rc = dv_error_set(DV_EINVAL, "%s: invalid tensor name '%s'", path, t->name);
            goto fail;
        }
        if ((unsigned)t->dtype >= DV_DTYPE_COUNT || t->n_dims < 0 || t->n_dims > DV_ST_MAX_DIMS) {
            rc = dv_error_set(DV_EINVAL, "%s: bad dtype %d or %d dims (tensor '%s')", path, (int)t->dtype,
                              t->n_dims, t->name);
            goto fail;
        }
        uint64_t nel = 1;
        for (int d = 0; d < t->n_dims; d++) {
            if (t->shape[d] < 0 || __builtin_mul_overflow(nel, (uint64_t)t->shape[d], &nel)) {
                rc = dv_error_set(DV_EINVAL, "%s: bad shape (tensor '%s')", path, t->name);
                goto fail;
            }
        }
        uint64_t nb;
        if (__builtin_mul_overflow(nel, (uint64_t)dv_dtype_size(t->dtype), &nb) || nb > (size_t)-1) {
            rc = dv_error_set(DV_EINVAL, "%s: shape too large (tensor '%s')", path, t->name);
            goto fail;
        }
        if (nb && !t->data && !t->fill) {
            rc = dv_error_set(DV_EINVAL, "%s: neither data nor fill given (tensor '%s')", path, t->name);
            goto fail;
        }
        nbytes[i] = (size_t)nb;
        names[i] = t->name;
    }
    qsort(names, (size_t)n, sizeof *names, st_cmp_str);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) {
            rc = dv_error_set(DV_EINVAL, "%s: duplicate tensor name '%s'", path, names[i]);
            goto fail;
        }
    for (int i = 0; i < n_meta; i++) {
        DV_ASSERT(meta_keys[i] && meta_values[i]);
        for (int j = 0; j < i; j++)
            if (strcmp(meta_keys[i], meta_keys[j]) == 0) {
                rc = dv_error_set(DV_EINVAL, "%s: duplicate metadata key '%s'", path, meta_keys[i]);
                goto fail;
            }
    }

    // ---- header: {"__metadata__": {...}, name: {dtype, shape, data_offsets}, ...} ----
    st_buf_puts(&h, "{");
    if (n_meta) {
        st_buf_puts(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) st_buf_puts(&h, ",");
            st_buf_put_json_string(&h, meta_keys[i]);
            st_buf_puts(&h, ":");
            st_buf_put_json_string(&h, meta_values[i]);
        }
        st_buf_puts(&h, "}");
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const dv_st_write_tensor *t = &tensors[i];
        if (n_meta || i) st_buf_puts(&h, ",");
        st_buf_put_json_string(&h, t->name);
        st_buf_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", dv_dtype_name(t->dtype));
        for (int d = 0; d < t->n_dims; d++) st_buf_printf(&h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        st_buf_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                      (unsigned long long)(off + nbytes[i]));
        off += nbytes[i];
    }
    st_buf_puts(&h, "}");
    while (!h.oom && h.n % 8) st_buf_puts(&h, " "); // the format allows trailing spaces; keeps data 8-aligned
    if (h.oom) {
        rc = dv_error_set(DV_ENOMEM, "%s: out of memory building the header", path);
        goto fail;
    }

    // ---- write to a temporary beside the target, published whole (core/dv_fs.h) ----
    buf = malloc(ST_WRITE_CHUNK);
    if (!buf) {
        rc = dv_error_set(DV_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if ((rc = dv_fs_atomic_open(path, &out))) goto fail;
    fd = dv_fs_atomic_file(out);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
    if ((err = st_write_all(fd, len8, 8)) || (err = st_write_all(fd, h.p, h.n))) goto io_fail;
    for (int i = 0; i < n; i++) {
        const dv_st_write_tensor *t = &tensors[i];
        if (t->data) {
            if ((err = st_write_all(fd, t->data, nbytes[i]))) goto io_fail;
            continue;
        }
        size_t es = dv_dtype_size(t->dtype), total = nbytes[i] / es, per = ST_WRITE_CHUNK / es;
        for (size_t first = 0; first < total; first += per) {
            size_t k = total - first < per ? total - first : per;
            t->fill(buf, k, first, t->fill_ctx);
            if ((err = st_write_all(fd, buf, k * es))) goto io_fail;
        }
    }
    rc = dv_fs_atomic_commit(out);
    out = NULL;
    if (rc) goto fail;
    rc = 0;
    goto done;
io_fail:
    rc = dv_error_set(DV_EIO, "%s: write failed (%s)", path, strerror(err));
fail:
    dv_fs_atomic_abort(out);
done:
    free(buf);
    free(h.p);
    free(names);
    free(nbytes);
    return rc;
}
