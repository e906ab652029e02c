// backend_module_fake.c: a stand-in backend module for test_backend_module.c, built twice: with the
// host's ABI (it registers and its init reports "no device", as the CUDA module does on a machine
// without a GPU) and with DV_FAKE_ABI_SKEW (it claims another ABI version, as a stale module would).
#include "kernels/dv_backend_module.h"

#include "core/dv_error.h"

#ifdef DV_FAKE_ABI_SKEW
#define FAKE_ABI (DV_BACKEND_MODULE_ABI + 1)
#else
#define FAKE_ABI DV_BACKEND_MODULE_ABI
#endif

static const dv_backend_host *host;

static dv_backend *fake_init(int device, int *status) {
    *status = host->error_set(DV_EDEVICE, "fake module: no device %d", device);
    return NULL;
}

__attribute__((visibility("default"))) int dv_backend_module_register(const dv_backend_host *h, dv_backend_module *mod) {
    if (h->abi != FAKE_ABI || h->sizeof_ops != sizeof(dv_backend_ops))
        return h->error_set(DV_EUNSUPPORTED, "fake module: ABI %d, host has %d", FAKE_ABI, h->abi);
    host = h;
    mod->abi = FAKE_ABI;
    mod->name = "fake";
    mod->init = fake_init;
    return 0;
}
