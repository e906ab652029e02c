// serve_media.c: where a request's video comes from. A video_url is a file:// path that must resolve
// (realpath: no ../, no symlink out) inside --media-path, a data: URL (base64; decoded into the upload
// folder), or the id of an uploaded file ("file-" and 16 hex digits, the content hash). Uploads are
// checked to be videos FFmpeg can open before they are kept.
#include "apps/serve.h"

#include "core/dv_error.h"
#include "vlm/dv_context_cache.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int hexval(int c) { return isdigit(c) ? c - '0' : (tolower(c) - 'a' + 10); }

// file:// URL -> path, %XX decoded; NULL when malformed
static char *url_path(const char *u) {
    if (!strncmp(u, "localhost/", 10)) u += 9;
    if (*u != '/') return NULL;
    char *p = malloc(strlen(u) + 1), *o = p;
    if (!p) return NULL;
    for (; *u; u++) {
        if (*u == '%') {
            if (!isxdigit((unsigned char)u[1]) || !isxdigit((unsigned char)u[2])) {
                free(p);
                return NULL;
            }
            *o = (char)(hexval(u[1]) * 16 + hexval(u[2]));
            if (!*o) {
                free(p);
                return NULL;
            }
            o++, u += 2;
        } else {
            *o++ = *u;
        }
    }
    *o = 0;
    return p;
}

static int is_file_id(const char *s) {
    return !strncmp(s, "file-", 5) && strlen(s) == 21 && strspn(s + 5, "0123456789abcdef") == 16;
}

static int from_data_url(dv_srv *srv, const char *url, char **path, char **err) {
    const char *comma = strchr(url, ',');
    if (!comma || comma - url < 12 || strncmp(comma - 7, ";base64", 7)) {
        *err = srv_error_json(400, "invalid_video_url", "video_url", "a data: URL must be data:video/...;base64,...");
        return 400;
    }
    const char *b64 = comma + 1;
    size_t n = strlen(b64);
    unsigned char *bin = malloc(n / 4 * 3 + 4);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s/upload-XXXXXX", srv->upload_dir);
    int fd = bin ? mkstemp(tmp) : -1;
    if (fd < 0) {
        free(bin);
        *err = srv_error_json(500, "internal_error", NULL, "cannot store the data: URL");
        return 500;
    }
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    int out = 0, fin = 0, ok = ctx != NULL;
    if (ok) {
        EVP_DecodeInit(ctx);
        ok = EVP_DecodeUpdate(ctx, bin, &out, (const unsigned char *)b64, (int)n) >= 0 &&
             EVP_DecodeFinal(ctx, bin + out, &fin) == 1;
    }
    EVP_ENCODE_CTX_free(ctx);
    size_t total = (size_t)out + (size_t)fin;
    ok = ok && total > 0 && write(fd, bin, total) == (ssize_t)total;
    close(fd);
    free(bin);
    if (!ok) {
        unlink(tmp);
        *err = srv_error_json(400, "invalid_video_url", "video_url", "the data: URL is not valid base64");
        return 400;
    }
    char *json = NULL;
    int rc = srv_media_keep_upload(srv, tmp, "data-url", (int64_t)total, &json, err);
    if (rc) return rc;
    cJSON *j = cJSON_Parse(json);
    free(json);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", srv->upload_dir, cJSON_IsString(id) ? id->valuestring : "");
    cJSON_Delete(j);
    *path = strdup(p);
    return *path ? 0 : 500;
}

int srv_media_resolve(dv_srv *srv, const char *url, char **path, char **err) {
    *path = NULL;
    if (!strncmp(url, "data:", 5)) return from_data_url(srv, url, path, err);
    if (is_file_id(url)) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", srv->upload_dir, url);
        if (access(p, R_OK)) {
            *err = srv_error_json(404, "file_not_found", "video_url", "no uploaded file '%s'", url);
            return 404;
        }
        *path = strdup(p);
        return *path ? 0 : 500;
    }
    if (strncmp(url, "file://", 7)) {
        *err = srv_error_json(400, "invalid_video_url", "video_url",
                              "video_url must be a file:// URL under --media-path, a data: URL or an uploaded file id");
        return 400;
    }
    if (!srv->media_real[0]) {
        *err = srv_error_json(403, "media_path_forbidden", "video_url",
                              "file:// URLs are refused: the server was started without --media-path");
        return 403;
    }
    char *p = url_path(url + 7);
    if (!p) {
        *err = srv_error_json(400, "invalid_video_url", "video_url", "a file:// URL must hold an absolute path");
        return 400;
    }
    char real[PATH_MAX];
    int found = realpath(p, real) != NULL;
    free(p);
    size_t ml = strlen(srv->media_real);
    // the resolved path (symlinks and .. followed) must lie inside the media folder
    if (found && !(strncmp(real, srv->media_real, ml) == 0 && real[ml] == '/')) {
        *err = srv_error_json(403, "media_path_forbidden", "video_url", "the video is outside --media-path");
        return 403;
    }
    struct stat st;
    if (!found || stat(real, &st) || !S_ISREG(st.st_mode)) {
        *err = srv_error_json(404, "file_not_found", "video_url", "no such video under --media-path");
        return 404;
    }
    *path = strdup(real);
    return *path ? 0 : 500;
}

int srv_media_keep_upload(dv_srv *srv, const char *tmp, const char *filename, int64_t bytes, char **json,
                          char **err) {
    dv_video *v = NULL;
    if (bytes <= 0 || dv_video_open(tmp, NULL, &v)) {
        unlink(tmp);
        *err = srv_error_json(400, "invalid_file", "file", "not a video FFmpeg can read: %s",
                              bytes <= 0 ? "empty" : dv_error_message());
        return 400;
    }
    dv_video_free(v);
    uint64_t h = 0;
    char path[4200];
    if (dv_ctx_hash_file(tmp, &h)) {
        unlink(tmp);
        *err = srv_error_json(500, "internal_error", NULL, "%s", dv_error_message());
        return 500;
    }
    char id[32];
    snprintf(id, sizeof id, "file-%016llx", (unsigned long long)h);
    snprintf(path, sizeof path, "%s/%s", srv->upload_dir, id);
    if (rename(tmp, path)) {
        unlink(tmp);
        *err = srv_error_json(500, "internal_error", NULL, "cannot keep the upload: %s", strerror(errno));
        return 500;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", id);
    cJSON_AddStringToObject(j, "object", "file");
    cJSON_AddNumberToObject(j, "bytes", (double)bytes);
    cJSON_AddNumberToObject(j, "created_at", (double)time(NULL));
    cJSON_AddStringToObject(j, "filename", filename ? filename : "upload");
    cJSON_AddStringToObject(j, "purpose", "vision");
    *json = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    pthread_mutex_lock(&srv->mu);
    srv->m_uploads++;
    pthread_mutex_unlock(&srv->mu);
    return 0;
}

static int video_name(const struct dirent *e) {
    static const char *ext[] = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".ts", ".mpg"};
    size_t n = strlen(e->d_name);
    if (e->d_name[0] == '.') return 0;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t k = strlen(ext[i]);
        if (n > k && !strcasecmp(e->d_name + n - k, ext[i])) return 1;
    }
    return 0;
}

char *srv_media_list(dv_srv *srv) {
    cJSON *j = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(j, "data");
    cJSON_AddStringToObject(j, "object", "list");
    struct dirent **names = NULL;
    int n = srv->media_real[0] ? scandir(srv->media_real, &names, video_name, alphasort) : 0;
    for (int i = 0; i < n; i++) {
        char p[PATH_MAX + 300];
        snprintf(p, sizeof p, "%s/%s", srv->media_real, names[i]->d_name);
        struct stat st;
        if (i < 500 && !stat(p, &st) && S_ISREG(st.st_mode)) {
            cJSON *e = cJSON_CreateObject();
            char u[PATH_MAX + 310];
            snprintf(u, sizeof u, "file://%s", p);
            cJSON_AddStringToObject(e, "name", names[i]->d_name);
            cJSON_AddStringToObject(e, "url", u);
            cJSON_AddNumberToObject(e, "bytes", (double)st.st_size);
            cJSON_AddItemToArray(a, e);
        }
        free(names[i]);
    }
    free(names);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}
