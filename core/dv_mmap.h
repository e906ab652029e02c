// dv_mmap.h: read-only memory maps of whole files (weights stay in the page cache, not the heap).
#ifndef DV_MMAP_H
#define DV_MMAP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dv_mmap {
    void *data;  // NULL for an empty file
    size_t size; // bytes
} dv_mmap;

// Maps `path` read-only. Errors (missing, unreadable, a directory) name the path. 0 or <0.
int dv_mmap_open(const char *path, dv_mmap *m);
// Unmaps; accepts a zeroed/closed map.
void dv_mmap_close(dv_mmap *m);

#ifdef __cplusplus
}
#endif
#endif
