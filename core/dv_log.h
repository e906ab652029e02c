// dv_log.h: levelled logging to stderr. The level comes from DUOVID_LOG=debug|info|warn|error
// (default info) or dv_log_set_level(); stdout is never written here (it carries answers and JSON).
#ifndef DV_LOG_H
#define DV_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

enum dv_log_level { DV_LOG_LEVEL_DEBUG = 0, DV_LOG_LEVEL_INFO, DV_LOG_LEVEL_WARN, DV_LOG_LEVEL_ERROR,
                    DV_LOG_LEVEL_QUIET };

// Reads DUOVID_LOG; an unknown value warns once and keeps "info". Safe to call more than once.
void dv_log_init_from_env(void);
void dv_log_set_level(enum dv_log_level level);
int dv_log_enabled(enum dv_log_level level);
void dv_log_write(enum dv_log_level level, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define DV_LOG_DEBUG(...) dv_log_write(DV_LOG_LEVEL_DEBUG, __func__, __VA_ARGS__)
#define DV_LOG_INFO(...)  dv_log_write(DV_LOG_LEVEL_INFO, __func__, __VA_ARGS__)
#define DV_LOG_WARN(...)  dv_log_write(DV_LOG_LEVEL_WARN, __func__, __VA_ARGS__)
#define DV_LOG_ERROR(...) dv_log_write(DV_LOG_LEVEL_ERROR, __func__, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
