// dv_fs.c: mkdir -p and atomic, durable publishing of files (dv_fs.h).
#include "core/dv_fs.h"

#include "core/dv_error.h"
#include "core/dv_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int dv_fs_mkdirs(const char *dir) {
    char p[4096];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) return dv_error_set(DV_EINVAL, "%s: path too long", dir);
    for (char *s = p + 1;; s++) {
        const char c = *s;
        if (c != '/' && c) continue;
        *s = 0;
        if (mkdir(p, 0777)) {
            const int err = errno; // EEXIST, or EACCES for an existing folder in a read-only parent
            struct stat sb;
            if (stat(p, &sb)) return dv_error_set(DV_EIO, "%s: cannot create (%s)", p, strerror(err));
            if (!S_ISDIR(sb.st_mode)) return dv_error_set(DV_EIO, "%s: exists and is not a folder", p);
        }
        *s = c;
        if (!c) return 0;
    }
}

struct dv_fs_atomic {
    FILE *f;
    char path[4096];
    char dir[4096];
    char tmp[4096 + 32];
};

// The folder of `path` ("." or "/" included) into dir; DV_EINVAL when too long or not a file path.
static int split_dir(const char *path, char *dir, size_t cap, const char **base) {
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    const int n = !slash ? snprintf(dir, cap, ".")
                  : slash == path ? snprintf(dir, cap, "/")
                                  : snprintf(dir, cap, "%.*s", (int)(slash - path), path);
    if (n < 0 || (size_t)n >= cap) return dv_error_set(DV_EINVAL, "%s: path too long", path);
    if (!**base) return dv_error_set(DV_EINVAL, "%s: not a file path", path);
    return 0;
}

// The rename is durable only once the folder is synced; best effort (some file systems refuse it).
static void sync_dir(const char *dir) {
    const int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
}

// A write killed mid-way (Ctrl-C, a crash) leaves its ".NAME.tmp.XXXXXX" behind; the next write of
// the same file removes those older than an hour (a younger one may be another process's write).
static void remove_stale_temps(const char *dir, const char *base) {
    DIR *d = opendir(dir);
    if (!d) return;
    char prefix[512], p[8192];
    const int pn = snprintf(prefix, sizeof prefix, ".%s.tmp.", base);
    const time_t now = time(NULL);
    for (struct dirent *e; pn > 0 && (size_t)pn < sizeof prefix && (e = readdir(d));) {
        struct stat sb;
        if (strncmp(e->d_name, prefix, (size_t)pn)) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (!stat(p, &sb) && S_ISREG(sb.st_mode) && now - sb.st_mtime > 3600 && !unlink(p))
            DV_LOG_DEBUG("%s: removed a temporary file of an interrupted write", p);
    }
    closedir(d);
}

int dv_fs_atomic_open(const char *path, dv_fs_atomic **out) {
    *out = NULL;
    dv_fs_atomic *a = calloc(1, sizeof *a);
    if (!a) return dv_error_set(DV_ENOMEM, "%s: out of memory", path);
    const char *base;
    int rc = split_dir(path, a->dir, sizeof a->dir, &base);
    if (!rc && (snprintf(a->path, sizeof a->path, "%s", path) >= (int)sizeof a->path ||
                snprintf(a->tmp, sizeof a->tmp, "%s/.%s.tmp.XXXXXX", a->dir, base) >= (int)sizeof a->tmp))
        rc = dv_error_set(DV_EINVAL, "%s: path too long", path);
    if (rc) {
        free(a);
        return rc;
    }
    remove_stale_temps(a->dir, base);
    const int fd = mkstemp(a->tmp);
    if (fd < 0) {
        rc = dv_error_set(DV_EIO, "%s: cannot create a temporary file in %s (%s)", path, a->dir, strerror(errno));
        free(a);
        return rc;
    }
    // mkstemp makes 0600; a published file gets the usual 0666 less the umask
    const mode_t um = umask(0);
    umask(um);
    (void)fchmod(fd, 0666 & ~um);
    if (!(a->f = fdopen(fd, "wb"))) {
        close(fd);
        unlink(a->tmp);
        free(a);
        return dv_error_set(DV_ENOMEM, "%s: out of memory", path);
    }
    *out = a;
    return 0;
}

FILE *dv_fs_atomic_file(dv_fs_atomic *a) { return a->f; }

int dv_fs_atomic_commit(dv_fs_atomic *a) {
    int err = 0;
    if (ferror(a->f)) err = errno ? errno : EIO;
    else if (fflush(a->f) || fsync(fileno(a->f))) err = errno;
    if (fclose(a->f) && !err) err = errno;
    a->f = NULL;
    if (!err && rename(a->tmp, a->path)) err = errno;
    if (err) {
        unlink(a->tmp);
        const int rc = dv_error_set(DV_EIO, "%s: cannot write (%s)", a->path, strerror(err));
        free(a);
        return rc;
    }
    sync_dir(a->dir);
    free(a);
    return 0;
}

void dv_fs_atomic_abort(dv_fs_atomic *a) {
    if (!a) return;
    if (a->f) fclose(a->f);
    unlink(a->tmp);
    free(a);
}

int dv_fs_write_atomic(const char *path, const void *data, size_t len) {
    dv_fs_atomic *a;
    int rc = dv_fs_atomic_open(path, &a);
    if (rc) return rc;
    if (len && fwrite(data, 1, len, a->f) != len) {
        const int err = errno;
        dv_fs_atomic_abort(a);
        return dv_error_set(DV_EIO, "%s: cannot write (%s)", path, strerror(err ? err : EIO));
    }
    return dv_fs_atomic_commit(a);
}

int dv_fs_publish(const char *from, const char *to) {
    char dir[4096];
    const char *base;
    int rc = split_dir(to, dir, sizeof dir, &base);
    if (rc) return rc;
    int err = 0;
    const int fd = open(from, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd)) err = errno;
    if (fd >= 0) close(fd);
    if (!err && rename(from, to)) err = errno;
    if (err) return dv_error_set(DV_EIO, "%s: cannot publish as %s (%s)", from, to, strerror(err));
    sync_dir(dir);
    return 0;
}
