// test_backend_module.c: loading a backend module (kernels/dv_backend_module.h) fails cleanly, with a
// message naming the file, for a missing file, a file that is not a shared library, a library
// without the registration symbol and a module of another ABI version; a module of the right ABI
// registers and its errors reach the host's dv_error_message(). dv_backend_cuda_init honours
// DUOVID_CUDA_MODULE and fails the same way (the CLI then warns and uses the CPU: cli/cuda_module.sh).
// The fake modules are built beside this test (DV_FAKE_MODULE_DIR).
#include "core/dv_error.h"
#include "kernels/dv_backend_module.h"
#include "tests/dv_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int mentions(const char *what) { return strstr(dv_error_message(), what) != NULL; }

static void expect_fail(const char *label, const char *path, int want_status, const char *name) {
    dv_backend_module mod;
    memset(&mod, 0, sizeof mod);
    dv_error_clear();
    const int rc = dv_backend_module_open(path, &mod);
    DV_CHECK_MSG(rc == want_status, "%s: status %d, want %d (%s)", label, rc, want_status, dv_error_message());
    DV_CHECK_MSG(mentions(name), "%s: message '%s' does not name %s", label, dv_error_message(), name);
    DV_CHECK_MSG(mod.init == NULL, "%s: entry points filled in on failure", label);
}

int main(void) {
    char garbage[] = "/tmp/duovid-test-module-XXXXXX";
    const int fd = mkstemp(garbage);
    DV_CHECK(fd >= 0);
    if (fd >= 0) {
        DV_CHECK(write(fd, "not an ELF file\n", 16) == 16);
        close(fd);
    }
    expect_fail("missing file", "/nonexistent/dir/libduovid-cuda.so", DV_ENOTFOUND, "/nonexistent/dir/libduovid-cuda.so");
    expect_fail("garbage file", garbage, DV_EFORMAT, garbage);

    char path[4096];
    snprintf(path, sizeof path, "%s/libdv_fake_module_skew.so", DV_FAKE_MODULE_DIR);
    expect_fail("ABI mismatch", path, DV_EFORMAT, "ABI");
    // a real shared library without the registration symbol
    expect_fail("no registration symbol", "libm.so.6", DV_EFORMAT, "dv_backend_module_register");

    // the right ABI: registers; init's error is recorded in this process's error message
    snprintf(path, sizeof path, "%s/libdv_fake_module.so", DV_FAKE_MODULE_DIR);
    dv_backend_module mod;
    memset(&mod, 0, sizeof mod);
    DV_CHECK_MSG(dv_backend_module_open(path, &mod) == 0, "fake module: %s", dv_error_message());
    if (mod.init) {
        int st = 0;
        dv_error_clear();
        DV_CHECK(mod.init(3, &st) == NULL && st == DV_EDEVICE && mentions("fake module: no device 3"));
        DV_CHECK(!strcmp(mod.name, "fake") && mod.abi == DV_BACKEND_MODULE_ABI);
    }

    // dv_backend_cuda_init through the environment variable: fails with the file's name, no crash
    setenv("DUOVID_CUDA_MODULE", garbage, 1);
    int st = 0;
    dv_backend *be = dv_backend_cuda_init(0, &st);
    DV_CHECK_MSG(!be && st == DV_EFORMAT && mentions(garbage), "cuda init via DUOVID_CUDA_MODULE: %d %s", st,
                 dv_error_message());
    // asked again: the same answer (the load is attempted once per process)
    st = 0;
    DV_CHECK(!dv_backend_cuda_init(0, &st) && st == DV_EFORMAT && mentions(garbage));
    dv_backend_free(be);
    unlink(garbage);
    return dv_test_finish();
}
