// dv_fs.c: mkdir -p and atomic small-file writes (dv_fs.h).
#include "core/dv_fs.h"

#include "core/dv_error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

int dv_fs_write_atomic(const char *path, const void *data, size_t len) {
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
        return dv_error_set(DV_EINVAL, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(data, 1, len, f) == len;
    if (f && fclose(f)) ok = 0;
    if (!ok || rename(tmp, path)) {
        const int err = errno;
        remove(tmp);
        return dv_error_set(DV_EIO, "%s: cannot write (%s)", path, strerror(err));
    }
    return 0;
}
