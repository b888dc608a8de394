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
 * A compact fixture stores no inputs: they are drawn again from the seeds in
 * its metadata (SplitMix64, four 16-bit quarters, rounded to the dtype), and
 * the kernel is evaluated and judged at the stored positions only.
 *
 * An operand in a format of its own (metadata "formats": float8_e4m3fn,
 * float8_e5m2, unit_scaling_e4m3, unit_scaling_e5m2) is stored as that
 * format's bytes (uint8) and decoded here from its bit fields; drawn, it is
 * rounded from float32 into the format.
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

#define MAX_MEMBERS 24
#define MAX_DIMS 3

typedef struct {
    char name[64];
    int dims;
    long shape[MAX_DIMS];
    long count;
    int itemsize; /* 1 (uint8), 4 (float32) or 8 (float64, int64) */
    int integer;  /* int64 positions */
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

/* Parse an .npy header: dtype ('<f4', '<f8', '<i8' or '|u1'), C order, shape. */
static int parse_npy(Member *m, const unsigned char *p, long size) {
    if (size < 10 || memcmp(p, "\x93NUMPY", 6) != 0 || p[6] != 1) return -1;
    long header = read_u16(p + 8);
    if (10 + header > size) return -1;
    char text[1024];
    if (header >= (long)sizeof text) return -1;
    memcpy(text, p + 10, header);
    text[header] = '\0';
    if (strstr(text, "'fortran_order': False") == NULL) return -1;
    m->integer = 0;
    if (strstr(text, "'descr': '<f4'")) m->itemsize = 4;
    else if (strstr(text, "'descr': '<f8'")) m->itemsize = 8;
    else if (strstr(text, "'descr': '<i8'")) m->itemsize = 8, m->integer = 1;
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

static long position(const Member *m, long i) {
    int64_t v;
    memcpy(&v, m->data + 8 * i, 8);
    return (long)v;
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

static const cJSON *path3(const cJSON *object, const char *a, const char *b, const char *c) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, a);
    item = cJSON_GetObjectItemCaseSensitive(item, b);
    return c == NULL ? item : cJSON_GetObjectItemCaseSensitive(item, c);
}

/* Round as the case's dtype stores it. */
static double stored(double x, int itemsize) { return itemsize == 4 ? (double)(float)x : x; }

/* ---- 8-bit operand formats: bit fields, and rounding into them ------------------------- */

typedef struct {
    const char *name;
    int e, m, bias;     /* exponent and mantissa bits, exponent bias */
    double largest;
    int kind;           /* 0: OCP E4M3 (no inf; S.1111.111 NaN), 1: IEEE (E5M2), 2: saturating */
} Format;

static const Format FORMATS[] = {
    {"float8_e4m3fn", 4, 3, 7, 448.0, 0},
    {"float8_e5m2", 5, 2, 15, 57344.0, 1},
    {"unit_scaling_e4m3", 4, 3, 8, 240.0, 2},
    {"unit_scaling_e5m2", 5, 2, 16, 57344.0, 2},
};

static const Format *format_named(const char *name) {
    for (size_t i = 0; name != NULL && i < sizeof FORMATS / sizeof FORMATS[0]; i++)
        if (strcmp(FORMATS[i].name, name) == 0) return &FORMATS[i];
    return NULL;
}

/* The value of one byte of format f. */
static double decoded(unsigned code, const Format *f) {
    int sign = code >> 7, exponent = (code >> f->m) & ((1 << f->e) - 1);
    int mantissa = code & ((1 << f->m) - 1), top = (1 << f->e) - 1;
    if (f->kind == 0 && exponent == top && mantissa == (1 << f->m) - 1) return NAN;
    if (f->kind == 1 && exponent == top) return mantissa ? NAN : (sign ? -INFINITY : INFINITY);
    double magnitude = exponent == 0 ? ldexp(mantissa, 1 - f->bias - f->m)
                                     : ldexp(1.0 + ldexp(mantissa, -f->m), exponent - f->bias);
    return sign ? -magnitude : magnitude;
}

/* x rounded to nearest in format f: ties to even (OCP) or toward zero (unit_scaling's);
   beyond the largest: NaN (E4M3), inf (E5M2) or the largest (saturating). */
static double rounded(double x, const Format *f) {
    if (isnan(x)) return x;
    double magnitude = fabs(x);
    int exponent;
    frexp(magnitude, &exponent);
    if (exponent - 1 < 1 - f->bias) exponent = 2 - f->bias; /* subnormal: the lowest binade */
    double quantum = ldexp(1.0, exponent - 1 - f->m), ratio = magnitude / quantum;
    double steps = floor(ratio), rest = ratio - steps;
    if (rest > 0.5 || (rest == 0.5 && f->kind != 2 && fmod(steps, 2.0) == 1.0)) steps += 1.0;
    double result = isinf(magnitude) ? magnitude : steps * quantum;
    if (result > f->largest) result = f->kind == 2 ? f->largest : f->kind == 0 ? NAN : INFINITY;
    return x < 0 ? -result : result;
}

/* ---- the inputs of a compact fixture, drawn again from their seeds --------------------- */

/* Sample i of the stream from `seed`: SplitMix64 output i, its four 16-bit quarters
   summed and centred, times sqrt(3)/2; then rounded to the dtype. */
static double drawn(uint64_t seed, uint64_t i, int itemsize) {
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    long sum = (long)(z & 0xFFFF) + (long)((z >> 16) & 0xFFFF) + (long)((z >> 32) & 0xFFFF) +
               (long)(z >> 48);
    double sample = (double)(sum - 131072) / 32768.0 * 0.8660254037844386;
    return stored(sample, itemsize);
}

typedef struct {
    double *data; /* the input, from the file or drawn */
    long count;
} Input;

static int load_input(const Npz *npz, const cJSON *meta, const char *name, long count, int itemsize,
                      Input *out) {
    out->count = count;
    out->data = malloc((count > 0 ? count : 1) * sizeof(double));
    if (out->data == NULL) return -1;
    const cJSON *named = path3(meta, "formats", name, NULL);
    const char *format_name = cJSON_IsString(named) ? cJSON_GetStringValue(named) : NULL;
    const Format *format = format_named(format_name);
    if (format_name != NULL && format == NULL) return -1; /* a format this reader lacks */
    const Member *m = find(npz, name);
    if (m != NULL) {
        if (m->count != count || m->integer) return -1;
        if (m->itemsize == 1 && format == NULL) return -1;
        for (long i = 0; i < count; i++) {
            if (m->itemsize == 1) out->data[i] = decoded(m->data[i], format);
            else out->data[i] = value(m, i); /* float32 values (format_version 2) */
        }
        return 0;
    }
    const cJSON *seed = path3(meta, "seeds", name, NULL);
    if (!cJSON_IsNumber(seed)) return -1;
    uint64_t s = (uint64_t)cJSON_GetNumberValue(seed);
    for (long i = 0; i < count; i++) {
        out->data[i] = drawn(s, (uint64_t)i, format != NULL ? 4 : itemsize);
        if (format != NULL) out->data[i] = rounded(out->data[i], format);
    }
    return 0;
}

/* ---- the naive kernel, one element at a time -------------------------------------------- */

typedef struct {
    long N, C, L, O, Cg, K, Og, out_length, stride, dilation, groups, pad_left;
    int flip;
    double scale_y, scale_x, scale_w, scale_b;
    const double *x, *w, *b, *g;
} Conv;

static double output_at(const Conv *c, long n, long o, long l) {
    double sum = c->b ? c->b[o] : 0.0;
    for (long i = 0; i < c->Cg; i++)
        for (long k = 0; k < c->K; k++) {
            long t = l * c->stride + k * c->dilation - c->pad_left;
            if (t < 0 || t >= c->L) continue;
            long tap = c->flip ? c->K - 1 - k : k;
            sum += c->x[(n * c->C + (o / c->Og) * c->Cg + i) * c->L + t] * c->w[(o * c->Cg + i) * c->K + tap];
        }
    return c->scale_y * sum;
}

static double grad_input_at(const Conv *c, long n, long ch, long t) {
    double sum = 0.0;
    long group = ch / c->Cg, i = ch % c->Cg;
    for (long j = 0; j < c->Og; j++) {
        long o = group * c->Og + j;
        for (long k = 0; k < c->K; k++) {
            long reach = t + c->pad_left - k * c->dilation;
            if (reach < 0 || reach % c->stride != 0 || reach / c->stride >= c->out_length) continue;
            sum += c->g[(n * c->O + o) * c->out_length + reach / c->stride] * c->w[(o * c->Cg + i) * c->K + k];
        }
    }
    return c->scale_x * sum;
}

static double grad_weight_at(const Conv *c, long o, long i, long k) {
    double sum = 0.0;
    for (long n = 0; n < c->N; n++)
        for (long l = 0; l < c->out_length; l++) {
            long t = l * c->stride + k * c->dilation - c->pad_left;
            if (t >= 0 && t < c->L)
                sum += c->g[(n * c->O + o) * c->out_length + l] * c->x[(n * c->C + (o / c->Og) * c->Cg + i) * c->L + t];
        }
    return c->scale_w * sum;
}

static double grad_bias_at(const Conv *c, long o) {
    double sum = 0.0;
    for (long n = 0; n < c->N; n++)
        for (long l = 0; l < c->out_length; l++) sum += c->g[(n * c->O + o) * c->out_length + l];
    return c->scale_b * sum;
}

/* ---- the verdict ----------------------------------------------------------------------- */

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

/* Judge one array: `count` judged elements, element j at flat index at[j] of an array seen
   as (items, rows, positions); actual[j] the kernel's value there. Prints its figures and
   returns 1 if it passes all three checks. bias_term: scales.output * bias[row] for the
   output, else NULL. */
static int judge(const Npz *npz, const cJSON *meta, const char *name, const double *actual,
                 const long *at, long count, long rows, long positions, const double *bias_term) {
    char scale_name[96];
    snprintf(scale_name, sizeof scale_name, "error_scale_%s", name);
    const Member *expected = find(npz, name), *scale = find(npz, scale_name);
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
    long *tile_count = calloc(rows * blocks + 1, sizeof *tile_count);
    long *row_count = calloc(rows + 1, sizeof *row_count);
    Sums *row_sums = calloc(rows + 1, sizeof *row_sums), whole = {0, 0, 0, 0, 0};
    long failing = 0;
    double worst = 0.0, squares = 0.0;
    for (long j = 0; j < count; j++) { /* each row's mean expected value, for centring */
        long r = (at[j] / positions) % rows;
        mean[r] += value(expected, j);
        row_count[r]++;
    }
    for (long r = 0; r < rows; r++) mean[r] = row_count[r] ? mean[r] / row_count[r] : 0.0;
    for (long j = 0; j < count; j++) {
        long r = (at[j] / positions) % rows, p = at[j] % positions;
        double e = value(expected, j), d = actual[j] - e;
        double error = fabs(d);
        double rounded = fabs(e) + (bias_term ? fabs(bias_term[r]) : 0.0);
        double magnitude = value(scale, j);
        double bound = acc_units * u_acc * magnitude + out_units * u_out * rounded;
        if (error > bound) failing++;
        if (error > 0 && error / bound > worst) worst = error / bound;
        double a = u_acc * magnitude, b = u_out * rounded;
        double yardstick = sqrt(a * a + b * b);
        double ratio = error == 0 ? 0.0 : error / yardstick; /* inf where 0 was required */
        tile[r * blocks + p / block] += ratio * ratio;
        tile_count[r * blocks + p / block]++;
        squares += ratio * ratio;
        double centred = e - mean[r], x = d * centred, c = e * centred;
        Sums *s = &row_sums[r];
        s->n += x, s->e += c, s->aa += x * x, s->ac += x * c, s->cc += c * c;
    }
    /* precision: the whole array, each row, each tile (those holding judged elements) */
    double array_bits = count ? bits - 0.5 * log2(squares / (double)count) : INFINITY;
    double least = array_bits;
    for (long r = 0; r < rows; r++) {
        double row = 0.0;
        for (long k = 0; k < blocks; k++) {
            if (!tile_count[r * blocks + k]) continue;
            double b = bits - 0.5 * log2(tile[r * blocks + k] / (double)tile_count[r * blocks + k]);
            if (b < least) least = b;
            row += tile[r * blocks + k];
        }
        if (!row_count[r]) continue;
        double b = bits - 0.5 * log2(row / (double)row_count[r]);
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
    free(tile), free(mean), free(tile_count), free(row_count), free(row_sums);
    return pass;
}

/* The judged positions of a result: stored (compact) or all `size` of them. */
static long *positions_of(const Npz *npz, const char *name, long size, long *count) {
    char member[96];
    snprintf(member, sizeof member, "positions_%s", name);
    const Member *m = find(npz, member);
    *count = m ? m->count : size;
    long *at = malloc((*count > 0 ? *count : 1) * sizeof *at);
    for (long j = 0; at && j < *count; j++) at[j] = m ? position(m, j) : j;
    return at;
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
    const Member *expected_output = find(&npz, "output");
    const cJSON *shapes = cJSON_GetObjectItemCaseSensitive(meta, "shapes");
    const cJSON *xs = cJSON_GetObjectItemCaseSensitive(shapes, "input");
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(shapes, "weight");
    if (meta == NULL || expected_output == NULL || !cJSON_IsArray(xs) || !cJSON_IsArray(ws)) {
        printf("error %s: missing metadata or results\n", path);
        cJSON_Delete(meta);
        free(npz.bytes);
        return 2;
    }
    const cJSON *arguments = cJSON_GetObjectItemCaseSensitive(meta, "arguments");
    int batched = cJSON_IsTrue(path3(meta, "resolved", "batched", NULL));
    int dims = cJSON_GetArraySize(xs);
    Conv c = {0};
    c.N = batched ? integer(cJSON_GetArrayItem(xs, 0)) : 1;
    c.C = integer(cJSON_GetArrayItem(xs, dims - 2));
    c.L = integer(cJSON_GetArrayItem(xs, dims - 1));
    c.O = integer(cJSON_GetArrayItem(ws, 0));
    c.Cg = integer(cJSON_GetArrayItem(ws, 1));
    c.K = integer(cJSON_GetArrayItem(ws, 2));
    c.stride = integer(cJSON_GetObjectItemCaseSensitive(arguments, "stride"));
    c.dilation = integer(cJSON_GetObjectItemCaseSensitive(arguments, "dilation"));
    c.groups = integer(cJSON_GetObjectItemCaseSensitive(arguments, "groups"));
    c.Og = c.O / c.groups;
    c.pad_left = (long)number(meta, "resolved", "pad_left");
    c.out_length = (long)number(meta, "resolved", "out_length");
    c.scale_y = number(meta, "scales", "output"), c.scale_x = number(meta, "scales", "grad_input");
    c.scale_w = number(meta, "scales", "grad_weight"), c.scale_b = number(meta, "scales", "grad_bias");
    const char *mistake = getenv("FIXTURE_CHECK_MISTAKE");
    c.flip = mistake != NULL && strcmp(mistake, "flip") == 0;
    int size = expected_output->itemsize;
    int has_bias = cJSON_IsTrue(path3(meta, "resolved", "has_bias", NULL));

    Input x, w, b = {NULL, 0}, g;
    int bad = load_input(&npz, meta, "input", c.N * c.C * c.L, size, &x);
    bad |= load_input(&npz, meta, "weight", c.O * c.Cg * c.K, size, &w);
    bad |= load_input(&npz, meta, "grad_output", c.N * c.O * c.out_length, size, &g);
    if (has_bias) bad |= load_input(&npz, meta, "bias", c.O, size, &b);
    if (bad) {
        printf("error %s: inputs neither stored nor drawable\n", path);
        cJSON_Delete(meta);
        free(npz.bytes);
        return 2;
    }
    c.x = x.data, c.w = w.data, c.g = g.data, c.b = has_bias ? b.data : NULL;
    double *bias_term = calloc(c.O, sizeof *bias_term);
    for (long o = 0; has_bias && o < c.O; o++) bias_term[o] = c.scale_y * c.b[o];

    const cJSON *id = cJSON_GetObjectItemCaseSensitive(meta, "id");
    printf("%s", cJSON_IsString(id) ? id->valuestring : path);
    int pass = 1;
    const char *names[4] = {"output", "grad_input", "grad_weight", "grad_bias"};
    for (int r = 0; r < (has_bias ? 4 : 3); r++) {
        long whole[4] = {c.N * c.O * c.out_length, c.N * c.C * c.L, c.O * c.Cg * c.K, c.O};
        long count, *at = positions_of(&npz, names[r], whole[r], &count);
        double *actual = malloc((count > 0 ? count : 1) * sizeof *actual);
        for (long j = 0; j < count; j++) {
            long i = at[j];
            double v;
            if (r == 0) v = output_at(&c, i / (c.O * c.out_length), (i / c.out_length) % c.O, i % c.out_length);
            else if (r == 1) v = grad_input_at(&c, i / (c.C * c.L), (i / c.L) % c.C, i % c.L);
            else if (r == 2) v = grad_weight_at(&c, i / (c.Cg * c.K), (i / c.K) % c.Cg, i % c.K);
            else v = grad_bias_at(&c, i);
            actual[j] = stored(v, size);
        }
        /* (items, rows, positions) of each array */
        long rows[4] = {c.O, c.C, c.O, 1};
        long span[4] = {c.out_length, c.L, c.Cg * c.K, c.O};
        pass &= judge(&npz, meta, names[r], actual, at, count, rows[r], span[r],
                      r == 0 ? bias_term : NULL);
        free(at), free(actual);
    }
    printf(" %s\n", pass ? "pass" : "FAIL");

    free(x.data), free(w.data), free(g.data), free(b.data), free(bias_term);
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
