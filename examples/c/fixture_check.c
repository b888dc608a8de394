/*
 * fixture_check: read uscale_ref golden fixtures in C, run a naive unit-scaled
 * conv1d forward and backward, and judge the results with the fixtures' rule
 * (docs/golden-format.md), all from the metadata:
 *
 *   bound      |actual - expected| <= A u_acc error_scale + R u_out rounded,
 *              rounded = |expected| (+ |scales.output * bias[o]| for the output)
 *   precision  bits = format_bits - log2(rms(|error| / yardstick)) over the array,
 *              each row and each tile of `block` positions, at least
 *              format_bits - margin_bits; yardstick = sqrt((u_acc E)^2 + (u_out M)^2)
 *   bias       the relative scale error the errors show, within z_limit standard
 *              errors of an allowed interval, over the array and per row
 *
 * Only libc and cJSON (Debian: libcjson-dev). Real cases (float32, float64);
 * others are reported as skipped.
 *
 *     cc -O2 -std=c99 -Wall -o fixture_check fixture_check.c -lcjson -lm
 *     ./fixture_check golden/f32_*.npz golden/f64_*.npz
 *
 * Exit status: 0 when every case read passes, 1 when one fails, 2 on a
 * file this program cannot read. FIXTURE_CHECK_MISTAKE=flip in the
 * environment runs a broken kernel (a true convolution, the kernel flipped)
 * to show what a failure looks like.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MEMBERS 16
#define MAX_DIMS 3

typedef struct {
    char name[64];
    int dims;
    long shape[MAX_DIMS];
    long count;
    int itemsize; /* 1 (uint8), 4 (float32) or 8 (float64) */
    const unsigned char *data;
} Member;

typedef struct {
    unsigned char *bytes;
    long size;
    int members;
    Member member[MAX_MEMBERS];
} Npz;

static unsigned read_u16(const unsigned char *p) { return p[0] | (p[1] << 8); }
static uint32_t read_u32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Parse an .npy header: dtype ('<f4', '<f8' or '|u1'), C order, shape. */
static int parse_npy(Member *m, const unsigned char *p, long size) {
    if (size < 10 || memcmp(p, "\x93NUMPY", 6) != 0 || p[6] != 1) return -1;
    long header = read_u16(p + 8);
    if (10 + header > size) return -1;
    char text[1024];
    if (header >= (long)sizeof text) return -1;
    memcpy(text, p + 10, header);
    text[header] = '\0';
    if (strstr(text, "'fortran_order': False") == NULL) return -1;
    if (strstr(text, "'descr': '<f4'")) m->itemsize = 4;
    else if (strstr(text, "'descr': '<f8'")) m->itemsize = 8;
    else if (strstr(text, "'descr': '|u1'")) m->itemsize = 1;
    else return -2; /* another dtype: complex, say */
    const char *shape = strstr(text, "'shape': (");
    if (shape == NULL) return -1;
    shape += strlen("'shape': (");
    m->dims = 0;
    m->count = 1;
    while (*shape != ')') {
        char *end;
        long value = strtol(shape, &end, 10);
        if (end == shape || m->dims == MAX_DIMS) return -1;
        m->shape[m->dims++] = value;
        m->count *= value;
        shape = end;
        while (*shape == ',' || *shape == ' ') shape++;
    }
    if (10 + header + m->count * m->itemsize != size) return -1;
    m->data = p + 10 + header;
    return 0;
}

/* Read an uncompressed .npz (a ZIP of .npy members) into memory. */
static int read_npz(const char *path, Npz *npz) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) return -1;
    fseek(file, 0, SEEK_END);
    npz->size = ftell(file);
    fseek(file, 0, SEEK_SET);
    npz->bytes = malloc(npz->size);
    if (npz->bytes == NULL || fread(npz->bytes, 1, npz->size, file) != (size_t)npz->size) {
        fclose(file);
        return -1;
    }
    fclose(file);
    npz->members = 0;
    long at = 0;
    while (at + 30 <= npz->size && read_u32(npz->bytes + at) == 0x04034b50) {
        const unsigned char *h = npz->bytes + at;
        unsigned method = read_u16(h + 8), name_length = read_u16(h + 26), extra = read_u16(h + 28);
        long length = read_u32(h + 18);
        if (method != 0 || npz->members == MAX_MEMBERS) return -1; /* stored members only */
        if (name_length < 5 || name_length >= 64 + 4) return -1;
        Member *m = &npz->member[npz->members++];
        memcpy(m->name, h + 30, name_length - 4); /* drop ".npy" */
        m->name[name_length - 4] = '\0';
        long data = at + 30 + name_length + extra;
        if (data + length > npz->size) return -1;
        int status = parse_npy(m, npz->bytes + data, length);
        if (status != 0) return status == -2 ? -2 : -1;
        at = data + length;
    }
    return npz->members > 0 ? 0 : -1;
}

static const Member *find(const Npz *npz, const char *name) {
    for (int i = 0; i < npz->members; i++)
        if (strcmp(npz->member[i].name, name) == 0) return &npz->member[i];
    return NULL;
}

static double value(const Member *m, long i) {
    if (m->itemsize == 4) {
        float f;
        memcpy(&f, m->data + 4 * i, 4);
        return f;
    }
    double d;
    memcpy(&d, m->data + 8 * i, 8);
    return d;
}

/* An int argument, or a one-element list ([2] is PyTorch's (2,)). */
static long integer(const cJSON *item) {
    if (cJSON_IsArray(item)) item = cJSON_GetArrayItem(item, 0);
    return (long)cJSON_GetNumberValue(item);
}

/* object[a] or object[a][b], as a number (NaN when absent). */
static double number(const cJSON *object, const char *a, const char *b) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, a);
    if (b != NULL) item = cJSON_GetObjectItemCaseSensitive(item, b);
    return cJSON_GetNumberValue(item);
}

/* Round as the case's dtype stores it. */
static double stored(double x, int itemsize) { return itemsize == 4 ? (double)(float)x : x; }

static const cJSON *path3(const cJSON *object, const char *a, const char *b, const char *c) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, a);
    item = cJSON_GetObjectItemCaseSensitive(item, b);
    return c == NULL ? item : cJSON_GetObjectItemCaseSensitive(item, c);
}

/* The bias statistic of a group: N = sum a, E = sum c, and the sums of squares and products. */
typedef struct { double n, e, aa, ac, cc; } Sums;

/* The smallest z over the allowed intervals ([[lo, hi], ...]) for one group's sums. */
static double bias_z(const Sums *s, const cJSON *intervals) {
    if (s->e <= 0) return 0.0;
    double beta = s->n / s->e, best = INFINITY;
    const cJSON *pair;
    cJSON_ArrayForEach(pair, intervals) {
        double lo = cJSON_GetNumberValue(cJSON_GetArrayItem(pair, 0));
        double hi = cJSON_GetNumberValue(cJSON_GetArrayItem(pair, 1));
        double delta = beta < lo ? lo : beta > hi ? hi : beta, z = 0.0;
        if (delta != beta) {
            double spread = s->aa - 2 * delta * s->ac + delta * delta * s->cc;
            z = fabs(s->n - delta * s->e) / sqrt(spread > 0 ? spread : 0);
            if (isnan(z)) z = 0.0;
        }
        if (z < best) best = z;
    }
    return best;
}

/* Judge one array, seen as (items, rows, positions); print its figures; return 1 if it
   passes all three checks. bias_term: scales.output * bias[row] for the output, else NULL. */
static int judge(const Npz *npz, const cJSON *meta, const char *name, const double *actual,
                 long items, long rows, long positions, const double *bias_term) {
    char scale_name[96];
    snprintf(scale_name, sizeof scale_name, "error_scale_%s", name);
    const Member *expected = find(npz, name), *scale = find(npz, scale_name);
    long count = items * rows * positions;
    if (expected == NULL || scale == NULL || expected->count != count) return 0;
    const cJSON *tolerance = cJSON_GetObjectItemCaseSensitive(meta, "tolerance");
    double u_out = number(tolerance, "unit_roundoff", NULL);
    double u_acc = number(tolerance, "accumulation_unit_roundoff", NULL);
    double acc_units = number(tolerance, "accumulation_units", name);
    double out_units = number(tolerance, "output_units", NULL);
    double bits = number(tolerance, "precision", "format_bits");
    double required = bits - number(tolerance, "precision", "margin_bits");
    long block = (long)number(tolerance, "precision", "block");
    double z_limit = number(tolerance, "bias", "z_limit");
    const cJSON *allowed = path3(tolerance, "bias", "allowed", name);
    const cJSON *row_allowed = path3(tolerance, "bias", "row_allowed", name);

    long blocks = (positions + block - 1) / block;
    double *tile = calloc(rows * blocks + 1, sizeof *tile), *mean = calloc(rows + 1, sizeof *mean);
    Sums *row_sums = calloc(rows + 1, sizeof *row_sums), whole = {0, 0, 0, 0, 0};
    long failing = 0;
    double worst = 0.0, squares = 0.0;
    for (long r = 0; r < rows; r++) { /* each row's mean expected value, for centring */
        for (long i = 0; i < items; i++)
            for (long p = 0; p < positions; p++) mean[r] += value(expected, (i * rows + r) * positions + p);
        mean[r] /= (double)(items * positions);
    }
    for (long i = 0; i < items; i++)
        for (long r = 0; r < rows; r++)
            for (long p = 0; p < positions; p++) {
                long at = (i * rows + r) * positions + p;
                double e = value(expected, at), d = actual[at] - e;
                double error = fabs(d);
                double rounded = fabs(e) + (bias_term ? fabs(bias_term[r]) : 0.0);
                double magnitude = value(scale, at);
                double bound = acc_units * u_acc * magnitude + out_units * u_out * rounded;
                if (error > bound) failing++;
                if (error > 0 && error / bound > worst) worst = error / bound;
                double a = u_acc * magnitude, b = u_out * rounded;
                double yardstick = sqrt(a * a + b * b);
                double ratio = error == 0 ? 0.0 : error / yardstick; /* inf where 0 was required */
                tile[r * blocks + p / block] += ratio * ratio;
                squares += ratio * ratio;
                double centred = e - mean[r], x = d * centred, c = e * centred;
                Sums *s = &row_sums[r];
                s->n += x, s->e += c, s->aa += x * x, s->ac += x * c, s->cc += c * c;
            }
    /* precision: the whole array, each row, each tile */
    double least = bits - 0.5 * log2(squares / (double)count);
    double array_bits = least;
    for (long r = 0; r < rows; r++) {
        double row = 0.0;
        for (long k = 0; k < blocks; k++) {
            long size = (k + 1) * block <= positions ? block : positions - k * block;
            double b = bits - 0.5 * log2(tile[r * blocks + k] / (double)(size * items));
            if (b < least) least = b;
            row += tile[r * blocks + k];
        }
        double b = bits - 0.5 * log2(row / (double)(items * positions));
        if (b < least) least = b;
    }
    /* bias: the whole array and each row */
    double z = 0.0;
    for (long r = 0; r < rows; r++) {
        Sums *s = &row_sums[r];
        whole.n += s->n, whole.e += s->e, whole.aa += s->aa, whole.ac += s->ac, whole.cc += s->cc;
        double row_z = rows > 1 ? bias_z(s, row_allowed) : 0.0;
        if (row_z > z) z = row_z;
    }
    double whole_z = bias_z(&whole, allowed);
    if (whole_z > z) z = whole_z;
    int pass = failing == 0 && least >= required && z <= z_limit;
    printf(" %s[bound %.2g, %.1f bits (least %.1f, need %g), z %.2g]", name, worst, array_bits,
           least, required, z);
    free(tile), free(mean), free(row_sums);
    return pass;
}

/* 0 pass, 1 fail, 2 unreadable, 3 skipped. */
static int check(const char *path) {
    Npz npz = {0};
    int status = read_npz(path, &npz);
    if (status == -2) {
        printf("skip %s: not a real float32/float64 case\n", path);
        free(npz.bytes);
        return 3;
    }
    const Member *metadata = status == 0 ? find(&npz, "metadata") : NULL;
    if (metadata == NULL) {
        printf("error %s: not a readable fixture\n", path);
        free(npz.bytes);
        return 2;
    }
    cJSON *meta = cJSON_ParseWithLength((const char *)metadata->data, metadata->count);
    const Member *x = find(&npz, "input"), *w = find(&npz, "weight"), *b = find(&npz, "bias");
    const Member *g = find(&npz, "grad_output");
    if (meta == NULL || x == NULL || w == NULL || g == NULL) {
        printf("error %s: missing metadata or inputs\n", path);
        cJSON_Delete(meta);
        free(npz.bytes);
        return 2;
    }
    const cJSON *arguments = cJSON_GetObjectItemCaseSensitive(meta, "arguments");
    long stride = integer(cJSON_GetObjectItemCaseSensitive(arguments, "stride"));
    long dilation = integer(cJSON_GetObjectItemCaseSensitive(arguments, "dilation"));
    long groups = integer(cJSON_GetObjectItemCaseSensitive(arguments, "groups"));
    long pad_left = (long)number(meta, "resolved", "pad_left");
    long out_length = (long)number(meta, "resolved", "out_length");
    int batched = cJSON_IsTrue(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(meta, "resolved"), "batched"));
    double scale_y = number(meta, "scales", "output"), scale_x = number(meta, "scales", "grad_input");
    double scale_w = number(meta, "scales", "grad_weight"), scale_b = number(meta, "scales", "grad_bias");

    long N = batched ? x->shape[0] : 1, C = x->shape[x->dims - 2], L = x->shape[x->dims - 1];
    long O = w->shape[0], Cg = w->shape[1], K = w->shape[2], Og = O / groups;
    int size = x->itemsize;
    const char *mistake = getenv("FIXTURE_CHECK_MISTAKE");
    int flip = mistake != NULL && strcmp(mistake, "flip") == 0;
    double *y = calloc(N * O * out_length, sizeof *y), *gi = calloc(N * C * L, sizeof *gi);
    double *gw = calloc(O * Cg * K, sizeof *gw), *gb = calloc(O, sizeof *gb);

    /* forward: y[n,o,l] = a_y (sum_{c,k} x_pad[n, G c0 + c, l s + k d] w[o,c,k] + b[o]) */
    for (long n = 0; n < N; n++)
        for (long o = 0; o < O; o++)
            for (long l = 0; l < out_length; l++) {
                double sum = b ? value(b, o) : 0.0;
                for (long c = 0; c < Cg; c++)
                    for (long k = 0; k < K; k++) {
                        long t = l * stride + k * dilation - pad_left;
                        if (t < 0 || t >= L) continue;
                        long tap = flip ? K - 1 - k : k;
                        sum += value(x, (n * C + (o / Og) * Cg + c) * L + t) * value(w, (o * Cg + c) * K + tap);
                    }
                y[(n * O + o) * out_length + l] = stored(scale_y * sum, size);
            }
    /* dgrad: gi[n, c, t] = a_x sum over (o, k, l) with l s + k d - p = t of g[n,o,l] w[o,c,k] */
    for (long n = 0; n < N; n++)
        for (long o = 0; o < O; o++)
            for (long l = 0; l < out_length; l++)
                for (long c = 0; c < Cg; c++)
                    for (long k = 0; k < K; k++) {
                        long t = l * stride + k * dilation - pad_left;
                        if (t < 0 || t >= L) continue;
                        gi[(n * C + (o / Og) * Cg + c) * L + t] +=
                            value(g, (n * O + o) * out_length + l) * value(w, (o * Cg + c) * K + k);
                    }
    /* wgrad: gw[o,c,k] = a_w sum_{n,l} g[n,o,l] x_pad[n, G c0 + c, l s + k d]; gb[o] = a_b sum g */
    for (long n = 0; n < N; n++)
        for (long o = 0; o < O; o++)
            for (long l = 0; l < out_length; l++) {
                double delta = value(g, (n * O + o) * out_length + l);
                gb[o] += delta;
                for (long c = 0; c < Cg; c++)
                    for (long k = 0; k < K; k++) {
                        long t = l * stride + k * dilation - pad_left;
                        if (t >= 0 && t < L)
                            gw[(o * Cg + c) * K + k] += delta * value(x, (n * C + (o / Og) * Cg + c) * L + t);
                    }
            }
    for (long i = 0; i < N * C * L; i++) gi[i] = stored(scale_x * gi[i], size);
    for (long i = 0; i < O * Cg * K; i++) gw[i] = stored(scale_w * gw[i], size);
    for (long i = 0; i < O; i++) gb[i] = stored(scale_b * gb[i], size);

    double *bias_term = calloc(O, sizeof *bias_term);
    for (long o = 0; b && o < O; o++) bias_term[o] = scale_y * value(b, o);

    const cJSON *id = cJSON_GetObjectItemCaseSensitive(meta, "id");
    printf("%s", cJSON_IsString(id) ? id->valuestring : path);
    int pass = judge(&npz, meta, "output", y, N, O, out_length, bias_term);
    pass &= judge(&npz, meta, "grad_input", gi, N, C, L, NULL);
    pass &= judge(&npz, meta, "grad_weight", gw, 1, O, Cg * K, NULL);
    if (b) pass &= judge(&npz, meta, "grad_bias", gb, 1, 1, O, NULL);
    printf(" %s\n", pass ? "pass" : "FAIL");

    free(y), free(gi), free(gw), free(gb), free(bias_term);
    cJSON_Delete(meta);
    free(npz.bytes);
    return pass ? 0 : 1;
}

int main(int argc, char **argv) {
    int counts[4] = {0, 0, 0, 0}; /* passed, failed, unreadable, skipped */
    for (int i = 1; i < argc; i++) counts[check(argv[i])]++;
    printf("%d passed, %d failed, %d skipped\n", counts[0], counts[1], counts[3]);
    if (counts[2] > 0 || counts[0] + counts[1] == 0) return 2;
    return counts[1] > 0 ? 1 : 0;
}
