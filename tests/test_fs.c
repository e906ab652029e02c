// test_fs.c: core/dv_fs's atomic publishing: a file appears only complete (a reader during the
// write sees the old file, or none), its temporary is gone after commit and after abort, failures
// (a missing or unwritable folder, a folder in the way) give one error naming the path and leave
// nothing behind; the small-buffer form and dv_fs_publish (a finished download) on top.
#include "core/dv_error.h"
#include "core/dv_fs.h"
#include "tests/dv_test.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[64];

static const char *tpath(const char *name) {
    static char buf[4][256];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, 256, "%s/%s", g_dir, name);
    return b;
}

// Number of entries in the folder whose names contain ".tmp.".
static int temps_in(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

// The file's whole content (NUL-terminated, malloc'ed), or NULL when it does not exist.
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = calloc(1, 1 << 16);
    size_t n = fread(b, 1, (1 << 16) - 1, f);
    b[n] = 0;
    fclose(f);
    return b;
}

static void test_stream_commit_abort(void) {
    const char *p = tpath("a.txt");
    dv_fs_atomic *a = NULL;
    DV_CHECK(dv_fs_atomic_open(p, &a) == 0 && a);
    FILE *f = dv_fs_atomic_file(a);
    fputs("first half, ", f);
    fflush(f);
    // mid-write: the target does not exist yet, the temporary does
    DV_CHECK_MSG(access(p, F_OK) != 0, "the target appeared before commit");
    DV_CHECK(temps_in(g_dir) == 1);
    fputs("second half", f);
    DV_CHECK(dv_fs_atomic_commit(a) == 0);
    char *s = slurp(p);
    DV_CHECK(s && !strcmp(s, "first half, second half"));
    free(s);
    DV_CHECK_MSG(temps_in(g_dir) == 0, "a temporary was left after commit");
    struct stat sb;
    DV_CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0044)); // not mkstemp's 0600 (umask permitting)

    // a rewrite: readers see the old content until the commit, the abort keeps it
    DV_CHECK(dv_fs_atomic_open(p, &a) == 0);
    fputs("replacement", dv_fs_atomic_file(a));
    fflush(dv_fs_atomic_file(a));
    s = slurp(p);
    DV_CHECK_MSG(s && !strcmp(s, "first half, second half"), "the old file changed before commit");
    free(s);
    dv_fs_atomic_abort(a);
    s = slurp(p);
    DV_CHECK(s && !strcmp(s, "first half, second half"));
    free(s);
    DV_CHECK_MSG(temps_in(g_dir) == 0, "a temporary was left after abort");
    dv_fs_atomic_abort(NULL);
}

static void test_small_and_publish(void) {
    const char *p = tpath("b.json");
    DV_CHECK(dv_fs_write_atomic(p, "{}", 2) == 0);
    char *s = slurp(p);
    DV_CHECK(s && !strcmp(s, "{}"));
    free(s);
    DV_CHECK(dv_fs_write_atomic(p, "", 0) == 0); // an empty file is a file
    s = slurp(p);
    DV_CHECK(s && !*s);
    free(s);
    DV_CHECK(temps_in(g_dir) == 0);

    const char *part = tpath("c.bin.part"), *dst = tpath("c.bin");
    FILE *f = fopen(part, "wb");
    fputs("downloaded", f);
    fclose(f);
    DV_CHECK(dv_fs_publish(part, dst) == 0);
    s = slurp(dst);
    DV_CHECK(s && !strcmp(s, "downloaded") && access(part, F_OK) != 0);
    free(s);
    int rc = dv_fs_publish(part, dst); // gone now
    printf("publish a missing file: %s\n", dv_error_message());
    DV_CHECK(rc == DV_EIO && strstr(dv_error_message(), "c.bin.part"));
}

static void test_failures(void) {
    // a missing folder: the error names the path, nothing is created
    dv_fs_atomic *a = (dv_fs_atomic *)1;
    int rc = dv_fs_atomic_open(tpath("no_such_dir/x.txt"), &a);
    printf("missing folder: %s\n", dv_error_message());
    DV_CHECK(rc == DV_EIO && a == NULL && strstr(dv_error_message(), "no_such_dir/x.txt"));
    rc = dv_fs_write_atomic(tpath("no_such_dir/x.txt"), "x", 1);
    DV_CHECK(rc == DV_EIO && strstr(dv_error_message(), "no_such_dir/x.txt"));
    // a folder in the way of the rename: the commit fails, the temporary is removed
    mkdir(tpath("taken"), 0755);
    DV_CHECK(dv_fs_write_atomic(tpath("taken/f"), "x", 1) == 0);
    rc = dv_fs_write_atomic(tpath("taken"), "y", 1);
    printf("folder in the way: %s\n", dv_error_message());
    DV_CHECK(rc == DV_EIO && strstr(dv_error_message(), "taken: cannot write"));
    DV_CHECK_MSG(temps_in(g_dir) == 0, "a temporary was left after a failed commit");
    DV_CHECK(dv_fs_atomic_open("", &a) == DV_EINVAL);
    DV_CHECK(dv_fs_atomic_open(tpath("taken/"), &a) == DV_EINVAL && strstr(dv_error_message(), "not a file path"));
    // an unwritable folder (root writes anyway: then only the success is checked)
    mkdir(tpath("ro"), 0555);
    chmod(tpath("ro"), 0555);
    rc = dv_fs_write_atomic(tpath("ro/x.txt"), "x", 1);
    if (geteuid() != 0) {
        printf("read-only folder: %s\n", dv_error_message());
        DV_CHECK(rc == DV_EIO && strstr(dv_error_message(), "ro/x.txt") && strstr(dv_error_message(), "Permission denied"));
        DV_CHECK(temps_in(tpath("ro")) == 0);
    } else {
        DV_CHECK(rc == 0);
        unlink(tpath("ro/x.txt"));
    }
    chmod(tpath("ro"), 0755);
    rmdir(tpath("ro"));
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/dv_test_fs_XXXXXX");
    if (!mkdtemp(g_dir)) DV_TEST_SKIP("mkdtemp failed");
    test_stream_commit_abort();
    test_small_and_publish();
    test_failures();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd)) fprintf(stderr, "note: could not remove %s\n", g_dir);
    return dv_test_finish();
}
