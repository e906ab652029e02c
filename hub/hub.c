// hub.c: the Hugging Face Hub client behind `duovid pull` (see hub.h): libcurl transfers with bounded
// retries, resumable downloads into FILE.part, sha256 (OpenSSL libcrypto) and size checks, and the
// choice of which repository files duovid needs.
#include "hub/dv_hub.h"

#include "core/dv_error.h"
#include "core/dv_fs.h"
#include "core/dv_json.h"
#include "core/dv_log.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct dv_hub {
    CURL *curl;
    struct curl_slist *headers;  // Authorization (when a token is set) and Accept
    char *repo, *endpoint, *revision;
    char *repo_url, *rev_url;    // URL-escaped repo ("ORG/NAME", each part escaped) and revision
    int max_retries;
    double retry_base_s;
    int (*cancel)(void *user);
    void *user;
};

dv_hub_params dv_hub_default_params(void) {
    return (dv_hub_params){.endpoint = "https://huggingface.co", .revision = "main", .token = NULL,
                           .max_retries = 5, .retry_base_s = 1.0, .cancel = NULL, .user = NULL};
}

static int interrupted(const dv_hub *h) { return h->cancel && h->cancel(h->user); }

// ---- URLs ----

// Escapes each '/'-separated part of s (so "refs/pr/1" as a revision must pass keep_slash = 0).
static char *url_escape_path(CURL *c, const char *s, int keep_slash) {
    if (!keep_slash) {
        char *e = curl_easy_escape(c, s, 0);
        char *r = e ? strdup(e) : NULL;
        curl_free(e);
        return r;
    }
    size_t cap = 3 * strlen(s) + 1, len = 0;
    char *out = malloc(cap);  // worst case every byte becomes %XX
    if (!out) return NULL;
    out[0] = 0;
    for (const char *p = s;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        char *e = curl_easy_escape(c, p, (int)n);
        if (!e) {
            free(out);
            return NULL;
        }
        len += (size_t)snprintf(out + len, cap - len, "%s%s", e, slash ? "/" : "");
        curl_free(e);
        if (!slash) break;
        p = slash + 1;
    }
    return out;
}

static char *file_url(const dv_hub *h, const char *name) {
    char *n = url_escape_path(h->curl, name, 1);
    if (!n) return NULL;
    size_t len = strlen(h->endpoint) + strlen(h->repo_url) + strlen(h->rev_url) + strlen(n) + 16;
    char *u = malloc(len);
    if (u) snprintf(u, len, "%s/%s/resolve/%s/%s", h->endpoint, h->repo_url, h->rev_url, n);
    free(n);
    return u;
}

int dv_hub_open(const char *repo, const dv_hub_params *p, dv_hub **out) {
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) return dv_error_set(DV_EIO, "libcurl: initialisation failed");
    dv_hub *h = calloc(1, sizeof *h);
    if (!h) {
        curl_global_cleanup();
        return dv_error_set(DV_ENOMEM, "hub: out of memory");
    }
    h->max_retries = p->max_retries;
    h->retry_base_s = p->retry_base_s;
    h->cancel = p->cancel;
    h->user = p->user;
    h->repo = strdup(repo);
    h->endpoint = strdup(p->endpoint);
    h->revision = strdup(p->revision);
    h->curl = curl_easy_init();
    if (!h->repo || !h->endpoint || !h->revision || !h->curl) goto nomem;
    for (size_t n = strlen(h->endpoint); n > 0 && h->endpoint[n - 1] == '/'; n--) h->endpoint[n - 1] = 0;
    h->repo_url = url_escape_path(h->curl, repo, 1);
    h->rev_url = url_escape_path(h->curl, p->revision, 0);
    if (!h->repo_url || !h->rev_url) goto nomem;
    if (p->token && *p->token) {
        size_t len = strlen(p->token) + 32;
        char *line = malloc(len);
        if (!line) goto nomem;
        snprintf(line, len, "Authorization: Bearer %s", p->token);
        // libcurl sends custom headers like this one only to the host first asked, not to the CDN a
        // redirect leads to (curl >= 7.58), so the token stays with the Hub.
        struct curl_slist *l = curl_slist_append(NULL, line);
        memset(line, 0, len);
        free(line);
        if (!l) goto nomem;
        h->headers = l;
    }
    *out = h;
    return 0;
nomem:
    dv_hub_free(h);
    return dv_error_set(DV_ENOMEM, "hub: out of memory");
}

void dv_hub_free(dv_hub *h) {
    if (!h) return;
    if (h->curl) curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->headers);
    free(h->repo);
    free(h->endpoint);
    free(h->revision);
    free(h->repo_url);
    free(h->rev_url);
    free(h);
    curl_global_cleanup();
}

// ---- one transfer ----

// State of one HTTP request. The body goes to `fp` (a download) or to `mem` (the API, small files).
typedef struct xfer {
    dv_hub *h;
    long status;                // HTTP status of the final response (after redirects)
    int64_t range_start;        // Content-Range start of the response, -1 when none
    int64_t content_length;     // Content-Length of the response, -1 when none
    char error_code[64];        // X-Error-Code (the Hub: RepoNotFound, GatedRepo, RevisionNotFound, ...)
    double retry_after;         // Retry-After seconds, 0 when none
    int started;                // the first body byte of a 2xx response has been seen
    // download
    FILE *fp;
    int64_t offset;             // bytes already in the .part when the request was sent
    int64_t written;            // bytes appended by this request
    EVP_MD_CTX *sha;            // over the whole .part, NULL when no sha256 is checked
    dv_progress *prog;
    int io_error, bad_range, restarted;
    // memory
    char *mem;
    size_t mem_len, mem_max;
    int too_big;
} xfer;

static size_t on_header(char *buf, size_t size, size_t n, void *ud) {
    xfer *x = ud;
    size_t len = size * n;
    char line[512];
    size_t k = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, buf, k);
    line[k] = 0;
    line[strcspn(line, "\r\n")] = 0;
    if (!strncmp(line, "HTTP/", 5)) {  // a new response (each redirect hop starts one)
        x->range_start = x->content_length = -1;
        x->error_code[0] = 0;
        x->retry_after = 0;
        return len;
    }
    char *colon = strchr(line, ':');
    if (!colon) return len;
    *colon = 0;
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
    if (!strcasecmp(line, "content-length")) {
        x->content_length = strtoll(v, NULL, 10);
    } else if (!strcasecmp(line, "content-range")) {
        long long a;
        if (sscanf(v, "bytes %lld-", &a) == 1) x->range_start = a;
    } else if (!strcasecmp(line, "x-error-code")) {
        snprintf(x->error_code, sizeof x->error_code, "%s", v);
    } else if (!strcasecmp(line, "retry-after")) {
        x->retry_after = atof(v);
    }
    return len;
}

// The first body byte of a download decides what the server did with our Range.
static int start_body(xfer *x) {
    x->started = 1;
    if (!x->fp || x->offset == 0) return 0;
    if (x->status == 206) {
        if (x->range_start != x->offset) {
            x->bad_range = 1;
            return -1;
        }
        return 0;
    }
    // 200: the server ignored the Range and sends the whole file; start the .part over.
    DV_LOG_INFO("%s: the server ignored the resume request; downloading the file again", x->h->repo);
    if (fflush(x->fp) || ftruncate(fileno(x->fp), 0) || fseeko(x->fp, 0, SEEK_SET)) {
        x->io_error = errno ? errno : EIO;
        return -1;
    }
    if (x->sha) EVP_DigestInit_ex(x->sha, EVP_sha256(), NULL);
    x->offset = 0;
    x->restarted = 1;
    return 0;
}

static size_t on_body(char *buf, size_t size, size_t n, void *ud) {
    xfer *x = ud;
    size_t len = size * n;
    if (!x->started) {
        curl_easy_getinfo(x->h->curl, CURLINFO_RESPONSE_CODE, &x->status);
        if (x->status < 200 || x->status >= 300) {
            x->started = 1;
        } else if (start_body(x)) {
            return 0;  // CURLE_WRITE_ERROR; the flags say why
        }
    }
    if (x->status < 200 || x->status >= 300) return len;  // an error page: not file content
    if (x->fp) {
        if (fwrite(buf, 1, len, x->fp) != len) {
            x->io_error = errno ? errno : EIO;
            return 0;
        }
        if (x->sha) EVP_DigestUpdate(x->sha, buf, len);
        x->written += (int64_t)len;
        dv_progress_update(x->prog, x->written);
        return len;
    }
    if (x->mem_len + len > x->mem_max) {
        x->too_big = 1;
        return 0;
    }
    char *m = realloc(x->mem, x->mem_len + len + 1);
    if (!m) {
        x->io_error = ENOMEM;
        return 0;
    }
    x->mem = m;
    memcpy(x->mem + x->mem_len, buf, len);
    x->mem_len += len;
    x->mem[x->mem_len] = 0;
    return len;
}

// Called by libcurl at least once a second, even on a stalled connection: lets Ctrl-C stop it.
static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt, (void)dn, (void)ut, (void)un;
    return interrupted(((xfer *)ud)->h);
}

static CURLcode perform(dv_hub *h, const char *url, const char *range, xfer *x) {
    CURL *c = h->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);  // the Hub redirects LFS files to its CDN
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "duovid/" DUOVID_VERSION);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    // A connection that moves no byte for a minute is dead: fail it so the retry loop resumes.
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_RANGE, range);  // our own Range header: a 200 answer is ours to handle
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    CURLcode rc = curl_easy_perform(c);
    if (!x->started) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->status);
    return rc;
}

// A failure worth another try: the network, or the server saying it is busy or broken.
static int transient(CURLcode rc, long status) {
    switch (rc) {
    case CURLE_OK: return status >= 500 || status == 429 || status == 408;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return 1;
    default: return 0;
    }
}

// Sleeps before retry `attempt` (1-based), in short slices so Ctrl-C is not held up; the warning says
// why (the curl error, else the HTTP status).
static int backoff(dv_hub *h, int attempt, double retry_after, const char *what, CURLcode rc, long status) {
    char why[96];
    if (rc == CURLE_OK) snprintf(why, sizeof why, "HTTP %ld", status);
    else snprintf(why, sizeof why, "%s", curl_easy_strerror(rc));
    double s = h->retry_base_s;
    for (int i = 1; i < attempt && s < 30; i++) s *= 2;
    if (s > 30) s = 30;
    if (retry_after > s && retry_after <= 60) s = retry_after;
    DV_LOG_WARN("%s: %s; retrying in %.1f s (%d of %d)", what, why, s, attempt, h->max_retries);
    for (double t = 0; t < s; t += 0.05) {
        if (interrupted(h)) return dv_error_set(DV_EINTR, "%s: interrupted", what);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

// The one-line error for an HTTP failure status (name: the file, NULL for the listing).
static int http_error(const dv_hub *h, const xfer *x, const char *name, int token) {
    const char *r = h->repo;
    if (x->status == 401 || x->status == 403) {
        if (!strcmp(x->error_code, "RepoNotFound"))
            return dv_error_set(DV_ENOTFOUND, "%s: no such model repository, or a private one (HTTP %ld): "
                                "set HF_TOKEN (or --token) if it is private", r, x->status);
        return dv_error_set(DV_EIO, "%s: access denied (HTTP %ld): the repository is gated or private; %s", r,
                            x->status, token ? "the token given has no access to it (accept its terms on "
                                               "the Hub first?)" : "set HF_TOKEN (or --token) to a token with access");
    }
    if (x->status == 404) {
        if (!name) return dv_error_set(DV_ENOTFOUND, "%s: no such model repository (or revision %s)", r, h->revision);
        return dv_error_set(DV_ENOTFOUND, "%s: %s: not found at revision %s (HTTP 404)", r, name, h->revision);
    }
    return dv_error_set(DV_EIO, "%s: %s: HTTP %ld", r, name ? name : "listing", x->status);
}

static int curl_error(const dv_hub *h, CURLcode rc, const char *name) {
    if (rc == CURLE_ABORTED_BY_CALLBACK && interrupted(h))
        return dv_error_set(DV_EINTR, "%s: %s: interrupted", h->repo, name);
    if (rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT)
        return dv_error_set(DV_EIO, "%s: %s: cannot reach %s (%s; offline? --endpoint / HF_ENDPOINT set a mirror)",
                            h->repo, name, h->endpoint, curl_easy_strerror(rc));
    return dv_error_set(DV_EIO, "%s: %s: %s", h->repo, name, curl_easy_strerror(rc));
}

static int get_url(dv_hub *h, const char *url, const char *name, size_t max_bytes, char **data, size_t *len) {
    const char *what = name ? name : "listing";
    for (int attempt = 0;; attempt++) {
        xfer x = {.h = h, .range_start = -1, .content_length = -1, .mem_max = max_bytes};
        CURLcode rc = perform(h, url, NULL, &x);
        if (rc == CURLE_OK && x.status >= 200 && x.status < 300) {
            if (!x.mem && !(x.mem = calloc(1, 1))) return dv_error_set(DV_ENOMEM, "%s: out of memory", what);
            *data = x.mem;
            *len = x.mem_len;
            return 0;
        }
        free(x.mem);
        if (x.too_big)
            return dv_error_set(DV_EFORMAT, "%s: %s: larger than %zu bytes", h->repo, what, max_bytes);
        if (x.io_error) return dv_error_set(DV_ENOMEM, "%s: %s: out of memory", h->repo, what);
        if (attempt < h->max_retries && transient(rc, x.status)) {
            int e = backoff(h, attempt + 1, x.retry_after, what, rc, x.status);
            if (e) return e;
            continue;
        }
        if (rc != CURLE_OK) return curl_error(h, rc, what);
        return http_error(h, &x, name, h->headers != NULL);
    }
}

int dv_hub_get(dv_hub *h, const char *name, size_t max_bytes, char **data, size_t *len) {
    char *url = file_url(h, name);
    if (!url) return dv_error_set(DV_ENOMEM, "%s: out of memory", name);
    int e = get_url(h, url, name, max_bytes, data, len);
    free(url);
    return e;
}

// ---- listing ----

int dv_hub_name_ok(const char *name) {
    if (!*name || *name == '/') return 0;
    for (const char *p = name;;) {
        const char *s = strchr(p, '/');
        size_t n = s ? (size_t)(s - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) return 0;
        if (!s) break;
        p = s + 1;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '\\') return 0;
    return 1;
}

void dv_hub_files_free(dv_hub_file *files, int n) {
    if (!files) return;
    for (int i = 0; i < n; i++) free(files[i].name);
    free(files);
}

int dv_hub_list(dv_hub *h, dv_hub_file **files, int *n) {
    *files = NULL;
    *n = 0;
    size_t len = strlen(h->endpoint) + strlen(h->repo_url) + strlen(h->rev_url) + 48;
    char *url = malloc(len);
    if (!url) return dv_error_set(DV_ENOMEM, "hub: out of memory");
    snprintf(url, len, "%s/api/models/%s/revision/%s?blobs=true", h->endpoint, h->repo_url, h->rev_url);
    char *text = NULL;
    size_t tlen = 0;
    int e = get_url(h, url, NULL, 64u << 20, &text, &tlen);
    free(url);
    if (e) return e;
    cJSON *root = NULL;
    char what[300];
    snprintf(what, sizeof what, "%s: the Hub API's answer", h->repo);
    e = dv_json_parse(text, tlen, what, &root);
    free(text);
    if (e) return e;
    const cJSON *sib = cJSON_GetObjectItemCaseSensitive(root, "siblings");
    if (!cJSON_IsArray(sib)) {
        cJSON_Delete(root);
        return dv_error_set(DV_EFORMAT, "%s: no \"siblings\" file list", what);
    }
    int cap = cJSON_GetArraySize(sib), k = 0;
    dv_hub_file *f = calloc((size_t)cap + 1, sizeof *f);
    if (!f) {
        cJSON_Delete(root);
        return dv_error_set(DV_ENOMEM, "hub: out of memory");
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, sib) {
        const char *name = dv_json_get_string(it, "rfilename");
        if (!name) continue;
        if (!dv_hub_name_ok(name)) {
            DV_LOG_DEBUG("%s: ignoring a file whose name is unsafe as a path: '%s'", h->repo, name);
            continue;
        }
        if (!(f[k].name = strdup(name))) {
            dv_hub_files_free(f, k);
            cJSON_Delete(root);
            return dv_error_set(DV_ENOMEM, "hub: out of memory");
        }
        f[k].size = -1;
        const cJSON *sz = cJSON_GetObjectItemCaseSensitive(it, "size");
        const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(it, "lfs");
        if (cJSON_IsObject(lfs) && !cJSON_IsNumber(sz)) sz = cJSON_GetObjectItemCaseSensitive(lfs, "size");
        if (cJSON_IsNumber(sz) && sz->valuedouble >= 0 && sz->valuedouble < 9e15) f[k].size = (int64_t)sz->valuedouble;
        const char *sha = cJSON_IsObject(lfs) ? dv_json_get_string(lfs, "sha256") : NULL;
        if (sha && strlen(sha) == 64 && strspn(sha, "0123456789abcdef") == 64) memcpy(f[k].sha256, sha, 65);
        k++;
    }
    cJSON_Delete(root);
    *files = f;
    *n = k;
    return 0;
}

// ---- choosing files ----

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int needed_name(const char *name) {
    static const char *const names[] = {
        "config.json", "generation_config.json", "model.safetensors.index.json", "tokenizer.model",
        "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "tokenizer.json",
        "preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json",
        "chat_template.json", "chat_template.jinja"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i])) return 1;
    return 0;
}

static int find_file(const dv_hub_file *files, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(files[i].name, name)) return i;
    return -1;
}

// Marks the shards the index's "weight_map" names.
static int pick_indexed(const dv_hub_file *files, int n, const char *index_json, unsigned char *pick) {
    cJSON *root = NULL;
    int e = dv_json_parse(index_json, strlen(index_json), "model.safetensors.index.json", &root);
    if (e) return e;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map"), *it;
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return dv_error_set(DV_EFORMAT, "model.safetensors.index.json: no \"weight_map\" object");
    }
    int shards = 0;
    cJSON_ArrayForEach(it, map) {
        const char *shard = cJSON_IsString(it) ? it->valuestring : NULL;
        int i = shard ? find_file(files, n, shard) : -1;
        if (i < 0) {
            e = shard ? dv_error_set(DV_ENOTFOUND, "model.safetensors.index.json: tensor '%s' is in '%s', which "
                                     "the repository does not have", it->string, shard)
                      : dv_error_set(DV_EFORMAT, "model.safetensors.index.json: tensor '%s' maps to a non-string",
                                     it->string);
            cJSON_Delete(root);
            return e;
        }
        shards += !pick[i];
        pick[i] = 1;
    }
    cJSON_Delete(root);
    if (!shards) return dv_error_set(DV_EFORMAT, "model.safetensors.index.json: an empty \"weight_map\"");
    return 0;
}

int dv_hub_select(const dv_hub_file *files, int n, const char *index_json, const char *const *include,
                  int n_include, unsigned char *pick) {
    memset(pick, 0, (size_t)n);
    int weights = 0;
    if (index_json) {
        int e = pick_indexed(files, n, index_json, pick);
        if (e) return e;
        weights = 1;
    }
    for (int i = 0; i < n; i++) {
        const char *name = files[i].name;
        if (needed_name(name)) pick[i] = 1;
        if (!index_json && !strchr(name, '/') && ends_with(name, ".safetensors")) pick[i] = weights = 1;
        for (int g = 0; g < n_include; g++)
            if (!fnmatch(include[g], name, 0)) pick[i] = 1;
    }
    if (!weights) return dv_error_set(DV_EUNSUPPORTED, "no safetensors weights (duovid reads only safetensors)");
    return 0;
}

// ---- downloads ----

static int64_t file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) ? (int64_t)sb.st_size : -1;
}

// Feeds the first `len` bytes of fp's file into sha (seconds for a big shard: Ctrl-C stops it).
static int hash_prefix(const dv_hub *h, FILE *fp, int64_t len, EVP_MD_CTX *sha, const char *path) {
    static unsigned char buf[1 << 16];
    if (fseeko(fp, 0, SEEK_SET)) return dv_error_set(DV_EIO, "%s: cannot seek (%s)", path, strerror(errno));
    for (int64_t left = len; left > 0;) {
        size_t want = left < (int64_t)sizeof buf ? (size_t)left : sizeof buf;
        size_t got = fread(buf, 1, want, fp);
        if (got != want) return dv_error_set(DV_EIO, "%s: cannot read (%s)", path, ferror(fp) ? strerror(errno) : "short file");
        EVP_DigestUpdate(sha, buf, got);
        left -= (int64_t)got;
        if (interrupted(h)) return dv_error_set(DV_EINTR, "%s: interrupted", path);
    }
    return fseeko(fp, len, SEEK_SET) ? dv_error_set(DV_EIO, "%s: cannot seek (%s)", path, strerror(errno)) : 0;
}

static void sha_hex(EVP_MD_CTX *sha, char hex[65]) {
    unsigned char d[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(sha, d, &n);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

// 1 when path holds exactly f (size, and sha256 when known), 0 when not, <0 on a read error.
static int already_complete(const dv_hub *h, const dv_hub_file *f, const char *path) {
    int64_t size = file_size(path);
    if (size < 0 || f->size < 0 || size != f->size) return 0;
    if (!f->sha256[0]) return 1;
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    int e = sha ? EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1 : 1;
    if (e) e = dv_error_set(DV_ENOMEM, "%s: cannot start sha256", path);
    else e = hash_prefix(h, fp, size, sha, path);
    char hex[65] = "";
    if (!e) sha_hex(sha, hex);
    EVP_MD_CTX_free(sha);
    fclose(fp);
    if (e) return e;
    if (strcmp(hex, f->sha256)) {
        DV_LOG_WARN("%s: its sha256 differs from the Hub's; downloading it again", path);
        return 0;
    }
    return 1;
}

// The folders of dir/name, when name has '/' parts.
static int make_parents(const char *path) {
    char *p = strdup(path);
    if (!p) return dv_error_set(DV_ENOMEM, "%s: out of memory", path);
    char *slash = strrchr(p, '/');
    if (slash && slash != p) *slash = 0;
    int e = slash && slash != p ? dv_fs_mkdirs(p) : 0;
    free(p);
    return e;
}

static char *join(const char *a, const char *b, const char *c) {
    size_t n = strlen(a) + strlen(b) + strlen(c) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s%s", a, b, c);
    return s;
}

// One attempt's transfer into the open .part; returns the curl code, the flags in *x say the rest.
static CURLcode fetch_into(dv_hub *h, const char *url, FILE *fp, int64_t have, EVP_MD_CTX *sha,
                           const dv_hub_file *f, const char *label, xfer *x) {
    *x = (xfer){.h = h, .range_start = -1, .content_length = -1, .fp = fp, .offset = have, .sha = sha};
    char range[32];
    snprintf(range, sizeof range, "%lld-", (long long)have);
    int64_t total = f->size >= 0 ? f->size - have : -1;
    x->prog = dv_progress_init(label, total > 0 ? total : -1, "B");
    CURLcode rc = perform(h, url, have > 0 ? range : NULL, x);
    if (fflush(fp) && !x->io_error) x->io_error = errno ? errno : EIO;
    if (rc == CURLE_OK && x->status >= 200 && x->status < 300) dv_progress_finish(x->prog);
    else dv_progress_free(x->prog);
    x->prog = NULL;
    return rc;
}

int dv_hub_download(dv_hub *h, const dv_hub_file *f, const char *dir, const char *label,
                    enum dv_hub_outcome *outcome, int64_t *fetched) {
    int e = 0;
    int64_t got = 0;
    char *path = join(dir, f->name, ""), *part = join(dir, f->name, ".part"), *url = file_url(h, f->name);
    FILE *fp = NULL;
    EVP_MD_CTX *sha = NULL;
    int64_t hashed = -1;  // bytes of the .part that `sha` covers; -1: none yet
    int resumed = 0;
    if (outcome) *outcome = DV_HUB_DOWNLOADED;
    if (fetched) *fetched = 0;
    if (!path || !part || !url) {
        e = dv_error_set(DV_ENOMEM, "%s: out of memory", f->name);
        goto done;
    }
    if ((e = already_complete(h, f, path)) != 0) {
        if (e > 0 && outcome) *outcome = DV_HUB_PRESENT;
        if (e > 0) e = 0;
        goto done;
    }
    if ((e = make_parents(path))) goto done;
    int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || !(fp = fdopen(fd, "r+b"))) {
        e = dv_error_set(DV_EIO, "%s: cannot create (%s)", part, strerror(errno));
        if (fd >= 0) close(fd);
        goto done;
    }
    if (f->sha256[0] && !(sha = EVP_MD_CTX_new())) {
        e = dv_error_set(DV_ENOMEM, "%s: cannot start sha256", f->name);
        goto done;
    }
    for (int attempt = 0;; attempt++) {
        int64_t have = file_size(part);
        if (have < 0) {
            e = dv_error_set(DV_EIO, "%s: vanished during the download", part);
            goto done;
        }
        if (f->size >= 0 && have > f->size) {  // not a prefix of this file: start over
            if (ftruncate(fileno(fp), 0)) {
                e = dv_error_set(DV_EIO, "%s: cannot truncate (%s)", part, strerror(errno));
                goto done;
            }
            have = 0;
        }
        if (sha && hashed != have) {  // (re)hash what the .part holds, once per call in practice
            EVP_DigestInit_ex(sha, EVP_sha256(), NULL);
            if ((e = hash_prefix(h, fp, have, sha, part))) goto done;
            hashed = have;
        }
        if (fseeko(fp, have, SEEK_SET)) {
            e = dv_error_set(DV_EIO, "%s: cannot seek (%s)", part, strerror(errno));
            goto done;
        }
        if (f->size >= 0 && have == f->size) break;  // a complete .part from an earlier run
        if (have > 0) {
            char b[32];
            dv_format_bytes(b, sizeof b, (double)have);
            DV_LOG_INFO("%s: resuming after %s", f->name, b);
            resumed = 1;
        }
        xfer x;
        CURLcode rc = fetch_into(h, url, fp, have, sha, f, label, &x);
        got += x.written;
        if (sha) hashed = (x.restarted ? 0 : have) + x.written;
        if (x.restarted) resumed = 0;
        if (x.io_error) {
            e = dv_error_set(DV_EIO, "%s: cannot write (%s)", part, strerror(x.io_error));
            goto done;
        }
        if (rc == CURLE_OK && x.status >= 200 && x.status < 300) {
            int64_t now = file_size(part), want = f->size;
            if (want < 0 && x.content_length >= 0) want = (x.restarted || x.status == 200 ? 0 : have) + x.content_length;
            if (want < 0 || now == want) break;
            if (now > want || attempt >= h->max_retries) {
                e = dv_error_set(DV_EIO, "%s: %s: got %lld bytes, expected %lld", h->repo, f->name,
                                 (long long)now, (long long)want);
                goto done;
            }
            if ((e = backoff(h, attempt + 1, 0, f->name, CURLE_PARTIAL_FILE, x.status))) goto done;
            continue;
        }
        int restart = x.bad_range || (rc == CURLE_OK && x.status == 416);
        if (restart && attempt < h->max_retries) {  // the server's idea of the file differs: start over
            DV_LOG_WARN("%s: the server did not resume at byte %lld; downloading it again", f->name, (long long)have);
            if (ftruncate(fileno(fp), 0)) {
                e = dv_error_set(DV_EIO, "%s: cannot truncate (%s)", part, strerror(errno));
                goto done;
            }
            continue;
        }
        if (attempt < h->max_retries && transient(rc, x.status) && !interrupted(h)) {
            if ((e = backoff(h, attempt + 1, x.retry_after, f->name, rc, x.status))) goto done;
            continue;
        }
        e = rc != CURLE_OK ? curl_error(h, rc, f->name) : http_error(h, &x, f->name, h->headers != NULL);
        goto done;
    }
    if (sha) {
        char hex[65];
        sha_hex(sha, hex);
        if (strcmp(hex, f->sha256)) {
            fclose(fp);
            fp = NULL;
            unlink(part);
            e = dv_error_set(DV_EFORMAT, "%s: %s: sha256 %s differs from the Hub's %s (download removed; rerun to "
                             "fetch it again)", h->repo, f->name, hex, f->sha256);
            goto done;
        }
    }
    int ce = fclose(fp);
    fp = NULL;
    if (ce) {
        e = dv_error_set(DV_EIO, "%s: cannot write (%s)", part, strerror(errno));
        goto done;
    }
    // data on disk before the name, the name durable (core/dv_fs.h): a crash never shows a short file
    if ((e = dv_fs_publish(part, path))) goto done;
    if (outcome && resumed) *outcome = DV_HUB_RESUMED;
done:
    if (fp) fclose(fp);
    if (e && part && file_size(part) == 0) unlink(part);  // nothing to resume: no litter
    EVP_MD_CTX_free(sha);
    if (fetched) *fetched = got;
    free(path);
    free(part);
    free(url);
    return e;
}
