// dv_fs.h: the file-system chores the layers share: creating a folder with its parents, and
// publishing a file atomically and durably, so a reader or a crash (of duovid or of the machine)
// sees the old file or the complete new one, never half a file. One rule for every published file:
// a temporary beside the target (".NAME.tmp.XXXXXX", same folder, so the rename is atomic), write,
// fflush + fsync, rename over the target, fsync of the folder (so the rename itself survives).
//
//   dv_fs_atomic *a;
//   if (dv_fs_atomic_open("out/frame.png", &a)) return ...;  // error names the path
//   fwrite(data, 1, n, dv_fs_atomic_file(a));                // or a library writing to the FILE *
//   if (failed) dv_fs_atomic_abort(a);                       // the temporary is removed
//   else rc = dv_fs_atomic_commit(a);                        // published; on failure removed
#ifndef DV_FS_H
#define DV_FS_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

// mkdir -p. An existing folder is fine (also in a read-only parent); a file in the way is
// "PATH: exists and is not a folder"; other failures "PATH: cannot create (reason)". DV_EIO.
int dv_fs_mkdirs(const char *dir);

typedef struct dv_fs_atomic dv_fs_atomic;

// Creates the temporary beside `path` (the folder must exist). Temporaries of earlier writes of the
// same file that were killed mid-way and are older than an hour are removed first. Errors:
// "PATH: cannot create a temporary file in DIR (reason)" (DV_EIO), DV_EINVAL for a path too long.
int dv_fs_atomic_open(const char *path, dv_fs_atomic **out);
// The stream to write the content into (owned by the handle: do not fclose it).
FILE *dv_fs_atomic_file(dv_fs_atomic *a);
// Flushes, syncs, closes and renames the temporary over the path, then syncs the folder; frees a.
// On failure (a write error seen on the stream, disk full, ...) the temporary is removed and
// "PATH: cannot write (reason)" returned (DV_EIO).
int dv_fs_atomic_commit(dv_fs_atomic *a);
// Removes the temporary and frees a. Accepts NULL.
void dv_fs_atomic_abort(dv_fs_atomic *a);

// A small file in one call: dv_fs_atomic_open, one fwrite, dv_fs_atomic_commit.
int dv_fs_write_atomic(const char *path, const void *data, size_t len);

// Publishes a file that was written (and closed) elsewhere under the name `from` (a download's
// resumable FILE.part): fsync of its data, rename over `to`, fsync of the folder.
// "FROM: cannot publish as TO (reason)" (DV_EIO); `from` is left in place on failure.
int dv_fs_publish(const char *from, const char *to);

#ifdef __cplusplus
}
#endif
#endif
