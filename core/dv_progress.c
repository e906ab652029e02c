// dv_progress.c: stderr progress bar (TTY redraw) or periodic plain lines (not a TTY).
#include "core/dv_progress.h"

#include "core/dv_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct dv_progress {
    char label[64];
    char unit[16];
    char note[160]; // extra text after the rate (per-stage figures of a pipeline)
    int64_t total, done;
    double t_start, t_last_print;
    int tty, printed;
};

double dv_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

dv_progress *dv_progress_init(const char *label, int64_t total, const char *unit) {
    dv_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "it");
    p->total = total;
    p->t_start = p->t_last_print = dv_time_now();
    p->tty = isatty(STDERR_FILENO);
    return p;
}

static void fmt_duration(char *buf, size_t n, double s) {
    if (s < 0 || s > 1e7) {
        snprintf(buf, n, "?");
        return;
    }
    int t = (int)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%d:%02d:%02d", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(buf, n, "%d:%02d", t / 60, t % 60);
}

void dv_format_bytes(char *buf, size_t n, double v) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void print_line(dv_progress *p, double now, int final) {
    double el = now - p->t_start;
    double rate = el > 0 ? (double)p->done / el : 0;
    char eta[32], elapsed[32], line[448];
    fmt_duration(elapsed, sizeof elapsed, el);
    if (p->total > 0 && !final) {
        fmt_duration(eta, sizeof eta, rate > 0 ? (double)(p->total - p->done) / rate : -1);
        double frac = (double)p->done / (double)p->total;
        if (frac > 1) frac = 1;
        char bar[21];
        int fill = (int)(frac * 20);
        for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
        bar[20] = 0;
        if (!strcmp(p->unit, "B")) {
            char d[32], t[32], r[32];
            dv_format_bytes(d, sizeof d, (double)p->done);
            dv_format_bytes(t, sizeof t, (double)p->total);
            dv_format_bytes(r, sizeof r, rate);
            snprintf(line, sizeof line, "%s [%s] %3.0f%% %s/%s, %s/s, ETA %s%s%s", p->label, bar, 100 * frac, d, t,
                     r, eta, *p->note ? " | " : "", p->note);
        } else {
            snprintf(line, sizeof line, "%s [%s] %3.0f%% %lld/%lld %s, %.1f %s/s, ETA %s%s%s", p->label, bar,
                     100 * frac, (long long)p->done, (long long)p->total, p->unit, rate, p->unit, eta,
                     *p->note ? " | " : "", p->note);
        }
    } else if (!strcmp(p->unit, "B")) {
        char d[32], r[32];
        dv_format_bytes(d, sizeof d, (double)p->done);
        dv_format_bytes(r, sizeof r, rate);
        snprintf(line, sizeof line, "%s %s in %s, %s/s%s%s%s", p->label, d, elapsed, r, final ? "" : " ...",
                 *p->note ? " | " : "", p->note);
    } else {
        snprintf(line, sizeof line, "%s %lld %s in %s, %.1f %s/s%s%s%s", p->label, (long long)p->done, p->unit,
                 elapsed, rate, p->unit, final ? "" : " ...", *p->note ? " | " : "", p->note);
    }
    if (p->tty)
        fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
    else
        fprintf(stderr, "%s\n", line);
    fflush(stderr);
    p->printed = 1;
    p->t_last_print = now;
}

void dv_progress_update(dv_progress *p, int64_t done) {
    if (!p || !dv_log_enabled(DV_LOG_LEVEL_INFO)) {
        if (p) p->done = done;
        return;
    }
    p->done = done;
    double now = dv_time_now();
    if (now - p->t_start < 0.5) return;
    double every = p->tty ? 0.1 : 5.0;
    if (now - p->t_last_print >= every) print_line(p, now, 0);
}

void dv_progress_set_note(dv_progress *p, const char *note) {
    if (p) snprintf(p->note, sizeof p->note, "%s", note ? note : "");
}

void dv_progress_finish(dv_progress *p) {
    if (!p) return;
    double now = dv_time_now();
    if (dv_log_enabled(DV_LOG_LEVEL_INFO) && (p->printed || now - p->t_start >= 0.5)) print_line(p, now, 1);
    free(p);
}

void dv_progress_free(dv_progress *p) {
    if (p && p->tty && p->printed) fprintf(stderr, "\n");
    free(p);
}
