// dv_log.c: levelled stderr logging ("duovid: warning: ..."); debug lines also name the function.
#include "core/dv_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static enum dv_log_level dv_log_level = DV_LOG_LEVEL_INFO;

void dv_log_set_level(enum dv_log_level level) { dv_log_level = level; }
int dv_log_enabled(enum dv_log_level level) { return level >= dv_log_level; }

void dv_log_init_from_env(void) {
    const char *v = getenv("DUOVID_LOG");
    if (!v || !*v) return;
    static const char *names[] = {"debug", "info", "warn", "error", "quiet"};
    for (int i = 0; i < 5; i++) {
        if (strcasecmp(v, names[i]) == 0) {
            dv_log_level = (enum dv_log_level)i;
            return;
        }
    }
    if (strcasecmp(v, "warning") == 0) {
        dv_log_level = DV_LOG_LEVEL_WARN;
        return;
    }
    fprintf(stderr, "duovid: warning: DUOVID_LOG=%s is not one of debug|info|warn|error; using info\n", v);
}

void dv_log_write(enum dv_log_level level, const char *func, const char *fmt, ...) {
    if (level < dv_log_level) return;
    // One fprintf per line so lines from threads do not interleave mid-line.
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    switch (level) {
    case DV_LOG_LEVEL_DEBUG: fprintf(stderr, "duovid: debug: %s: %s\n", func, msg); break;
    case DV_LOG_LEVEL_INFO: fprintf(stderr, "duovid: %s\n", msg); break;
    case DV_LOG_LEVEL_WARN: fprintf(stderr, "duovid: warning: %s\n", msg); break;
    default: fprintf(stderr, "duovid: error: %s\n", msg); break;
    }
}
