// dv_fs.h: the two file-system chores several commands share: creating a folder with its parents,
// and writing a small file atomically (a temporary beside it, renamed over it), so a reader or a
// crash never sees half a file.
#ifndef DV_FS_H
#define DV_FS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// mkdir -p. An existing folder is fine (also in a read-only parent); a file in the way is
// "PATH: exists and is not a folder"; other failures "PATH: cannot create (reason)". DV_EIO.
int dv_fs_mkdirs(const char *dir);
// Writes len bytes of data to PATH.tmp.PID and renames it over path; on any failure the temporary
// is removed and "PATH: cannot write (reason)" returned (DV_EIO).
int dv_fs_write_atomic(const char *path, const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif
