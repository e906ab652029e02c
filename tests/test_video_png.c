// test_video_png.c: PNG write/read round trip (odd sizes), atomic writes (no partial file on failure),
// the threaded writer (many frames through a small queue: every file bit-exact under its own name;
// a failing write surfaces as the error of a later call and leaves no temporary behind), the contact
// sheet's layout, thumbnails and bitmap-font labels, read back from the PNG.
#include "core/dv_error.h"
#include "tests/dv_test.h"
#include "video/dv_png.h"
#include "video/dv_sheet.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/dv_png_test.XXXXXX";

static int count_files(const char *path) {
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

static void test_roundtrip(void) {
    int w = 37, h = 23;
    uint8_t *img = malloc((size_t)w * h * 3), *back = NULL;
    uint64_t seed = 99;
    for (int i = 0; i < w * h * 3; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        img[i] = (uint8_t)(seed >> 32);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/a.png", dir);
    DV_CHECK(dv_png_write_rgb(path, img, w, h) == 0);
    int rw = 0, rh = 0;
    DV_CHECK(dv_png_read_rgb(path, &back, &rw, &rh) == 0);
    int diff = back && rw == w && rh == h ? memcmp(back, img, (size_t)w * h * 3) : -1;
    printf("png round trip %dx%d: %s\n", w, h, diff == 0 ? "identical" : "DIFFERENT");
    DV_CHECK(diff == 0);
    DV_CHECK(count_files(dir) == 1); // no temp file left next to it
    // A folder that does not exist: error naming the path, nothing written anywhere.
    char bad[160];
    snprintf(bad, sizeof bad, "%s/missing/b.png", dir);
    DV_CHECK(dv_png_write_rgb(bad, img, w, h) == DV_EIO && strstr(dv_error_message(), bad));
    DV_CHECK(count_files(dir) == 1);
    // Not a PNG.
    char txt[128];
    snprintf(txt, sizeof txt, "%s/t.png", dir);
    FILE *f = fopen(txt, "w");
    fputs("not a png", f);
    fclose(f);
    uint8_t *none = NULL;
    DV_CHECK(dv_png_read_rgb(txt, &none, &rw, &rh) == DV_EFORMAT && none == NULL);
    unlink(txt);
    unlink(path);
    free(img);
    free(back);
}

// Frame i of the writer test: random pixels seeded by i, with a gradient so the filters have work.
static void writer_frame(int i, uint8_t *img, int w, int h) {
    uint64_t seed = 1000 + (uint64_t)i;
    for (int p = 0; p < w * h * 3; p++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        img[p] = (uint8_t)(p % 3 == 0 ? (uint64_t)((p / 3) % w * 255 / w) : (seed >> 32) & (i % 2 ? 0xffu : 0x0fu));
    }
}

static void test_writer(void) {
    int w = 61, h = 17, n = 23;
    uint8_t *img = malloc((size_t)w * h * 3);
    char path[200];
    for (int threads = 1; threads <= 3; threads += 2) {
        dv_png_writer *pw = NULL;
        DV_CHECK(dv_png_writer_init(threads, w, h, sizeof path, &pw) == 0);
        if (!pw) break;
        for (int i = 0; i < n; i++) {
            writer_frame(i, img, w, h);
            snprintf(path, sizeof path, "%s/w_%03d.png", dir, i);
            DV_CHECK(dv_png_writer_submit(pw, path, img) == 0);
            memset(img, 0x55, (size_t)w * h * 3); // the writer copied it: reusing the buffer is fine
        }
        DV_CHECK(dv_png_writer_finish(pw) == 0);
        dv_png_writer_free(pw);
        int same = 0;
        uint8_t *want = malloc((size_t)w * h * 3);
        for (int i = 0; i < n; i++) {
            uint8_t *back = NULL;
            int rw = 0, rh = 0;
            snprintf(path, sizeof path, "%s/w_%03d.png", dir, i);
            writer_frame(i, want, w, h);
            if (dv_png_read_rgb(path, &back, &rw, &rh) == 0 && rw == w && rh == h &&
                !memcmp(back, want, (size_t)w * h * 3))
                same++;
            free(back);
            unlink(path);
        }
        free(want);
        printf("png writer, %d threads: %d/%d frames bit-exact\n", threads, same, n);
        DV_CHECK(same == n);
        DV_CHECK(count_files(dir) == 0);
    }
    // A write that fails (its folder is missing): a later submit or finish returns the error naming
    // the path; nothing is left behind.
    dv_png_writer *pw = NULL;
    DV_CHECK(dv_png_writer_init(2, w, h, sizeof path, &pw) == 0);
    int rc = 0, i;
    for (i = 0; pw && i < 50 && rc == 0; i++) {
        snprintf(path, sizeof path, "%s/%s/w_%03d.png", dir, i == 3 ? "missing" : ".", i);
        rc = dv_png_writer_submit(pw, path, img);
    }
    if (pw && rc == 0) rc = dv_png_writer_finish(pw);
    printf("png writer error after %d submits: %s\n", i, dv_error_message());
    DV_CHECK(rc == DV_EIO && strstr(dv_error_message(), "missing/w_003.png"));
    DV_CHECK(pw && dv_png_writer_finish(pw) == DV_EIO); // stays failed
    dv_png_writer_free(pw);
    dv_png_writer_free(NULL);
    DIR *d = opendir(dir);
    int tmp_left = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strstr(e->d_name, ".tmp")) tmp_left++;
        char file[600];
        snprintf(file, sizeof file, "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.') unlink(file);
    }
    if (d) closedir(d);
    DV_CHECK(tmp_left == 0);
    free(img);
}

static void test_sheet(void) {
    char buf[32];
    dv_sheet_format_time(83.45, buf, sizeof buf);
    DV_CHECK(!strcmp(buf, "1:23.450"));
    dv_sheet_format_time(3725.0004, buf, sizeof buf);
    DV_CHECK(!strcmp(buf, "1:02:05.000"));
    // 5 frames of solid colours (different sizes/aspects) in 3 columns of 64x48 cells.
    static const uint8_t colours[5][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {200, 200, 0}, {0, 128, 255}};
    dv_sheet *s = NULL;
    DV_CHECK(dv_sheet_init(6, 3, 64, 48, &s) == 0);
    if (!s) return;
    uint8_t *frame = malloc(100 * 75 * 3);
    for (int i = 0; i < 5; i++) {
        int fw = i == 3 ? 40 : 100, fh = i == 3 ? 60 : 75; // frame 3 is portrait: pillarboxed
        for (int p = 0; p < fw * fh; p++) memcpy(frame + 3 * p, colours[i], 3);
        dv_sheet_format_time(i * 1.5, buf, sizeof buf);
        DV_CHECK(dv_sheet_add(s, frame, fw, fh, buf) == 0);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/sheet.png", dir);
    DV_CHECK(dv_sheet_write(s, path) == 0);
    uint8_t *img = NULL;
    int w = 0, h = 0;
    DV_CHECK(dv_png_read_rgb(path, &img, &w, &h) == 0);
    // Layout: pad 4, cell 68 wide, cell height 48 + 7 + 12 = 67 (font scale 1 below 160 px).
    int cell_w = 68, cell_h = 67;
    printf("sheet: %dx%d (2 rows of 3 cells of %dx%d)\n", w, h, cell_w, cell_h);
    DV_CHECK(w == 3 * cell_w + 4 && h == 2 * cell_h + 4);
    int bad = 0;
    for (int i = 0; i < 5 && img; i++) {
        int cx = 4 + (i % 3) * cell_w, cy = 4 + (i / 3) * cell_h;
        const uint8_t *c = img + ((size_t)(cy + 24) * w + cx + 32) * 3;
        if (memcmp(c, colours[i], 3)) bad++;
        // The label's first glyph ('0' for all of these) drawn pixel for pixel under the picture.
        uint8_t rows[7];
        dv_font_glyph('0', rows);
        for (int gy = 0; gy < 7; gy++)
            for (int gx = 0; gx < 5; gx++) {
                const uint8_t *px = img + ((size_t)(cy + 48 + 4 + gy) * w + cx + gx) * 3;
                int on = px[0] == 255 && px[1] == 255 && px[2] == 255;
                if (on != !!(rows[gy] & (0x10 >> gx))) bad++;
            }
        // Portrait frame: the cell's left edge is background (pillarbox), the centre is the colour.
        if (i == 3) {
            const uint8_t *edge = img + ((size_t)(cy + 24) * w + cx + 2) * 3;
            if (!memcmp(edge, colours[3], 3)) bad++;
        }
    }
    printf("sheet: %d wrong pixels/cells\n", bad);
    DV_CHECK(bad == 0);
    // Cell 6 is empty; a 7th frame does not fit.
    DV_CHECK(dv_sheet_add(s, frame, 10, 10, "x") == 0 && dv_sheet_add(s, frame, 10, 10, "x") == DV_EINVAL);
    dv_sheet_free(s);
    // Too big to be sane.
    s = NULL;
    DV_CHECK(dv_sheet_init(100000, 0, 192, 108, &s) == DV_EINVAL && s == NULL && strstr(dv_error_message(), "--frames"));
    dv_sheet_free(NULL);
    unlink(path);
    free(frame);
    free(img);
}

int main(void) {
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_roundtrip();
    test_writer();
    test_sheet();
    rmdir(dir);
    return dv_test_finish();
}
