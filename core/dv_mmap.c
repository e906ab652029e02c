// dv_mmap.c: read-only private maps of whole files (checkpoints stay in the page cache, shared
// between processes, and cost no heap).
#include "core/dv_mmap.h"

#include "core/dv_error.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int dv_mmap_open(const char *path, dv_mmap *m) {
    DV_ASSERT(path && m);
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return dv_error_set(e == ENOENT || e == ENOTDIR ? DV_ENOTFOUND : DV_EIO, "%s: cannot open (%s)",
                            path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return dv_error_set(DV_EIO, "%s: cannot stat (%s)", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return dv_error_set(DV_EIO, "%s: is a directory, expected a file", path);
    }
    if (!S_ISREG(st.st_mode)) { // a FIFO or device has no stable size to map
        close(fd);
        return dv_error_set(DV_EIO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) { // mmap of length 0 is EINVAL; an empty file is simply an empty map
        close(fd);
        return 0;
    }
    if ((unsigned long long)st.st_size > (size_t)-1) {
        close(fd);
        return dv_error_set(DV_EIO, "%s: too large to map (%lld bytes)", path, (long long)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); // the mapping keeps its own reference to the file
    if (p == MAP_FAILED)
        return dv_error_set(e == ENOMEM ? DV_ENOMEM : DV_EIO, "%s: cannot mmap %zu bytes (%s)", path, size,
                            strerror(e));
#ifdef MADV_DONTDUMP
    // multi-GB weight maps would otherwise dominate any core dump; they can be re-read from disk
    (void)madvise(p, size, MADV_DONTDUMP);
#endif
    m->data = p;
    m->size = size;
    return 0;
}

void dv_mmap_close(dv_mmap *m) {
    if (!m) return;
    if (m->data) munmap(m->data, m->size);
    m->data = NULL;
    m->size = 0;
}
