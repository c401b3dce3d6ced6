/*
 * output.c - print a report as a table, JSON or CSV, and escape paths safely.
 *
 * Paths on Linux are arbitrary bytes. Nothing is ever written raw:
 *   - for humans (stderr, the table) printable valid UTF-8 passes through; control characters
 *     become \n, \t, \r or \xNN, C1 controls and bidi controls \uNNNN; invalid UTF-8 bytes
 *     become \xNN; a backslash becomes \\;
 *   - in JSON the string is valid UTF-8 whose *decoded* value uses the same scheme: an invalid
 *     byte 0xFF decodes to the four characters \xff (JSON text "\\xff"), a backslash in the path
 *     decodes to two backslashes (JSON text "\\\\"), so the mapping is reversible; control
 *     characters, C1 and bidi controls are JSON escapes (\n, \t, \u0001, \u009b, \u202e ...)
 *     and decode to themselves.
 * Letters are always listed а..я in JSON; --sort applies to the table and CSV.
 */
#include <stdlib.h>
#include <string.h>

#include "lt.h"

#define BAR_WIDTH 40

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if the byte at s starts none. */
static size_t
utf8_seq_len(const unsigned char *s)
{
    size_t n, i;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        n = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        n = 3;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        n = 4;
    else
        return 0;
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0; /* also stops at the terminating NUL */
    }
    cp = s[0] & (0x7Fu >> n);
    for (i = 1; i < n; i++)
        cp = (cp << 6) | (s[i] & 0x3Fu);
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0; /* overlong or surrogate */
    return n;
}

/* The code point of the valid n-byte sequence at s if it is one that can take over a terminal
 * or reorder what it shows - a C1 control (U+0080..U+009F: U+009B is an 8-bit CSI) or a bidi
 * embedding, override or isolate (U+202A..U+202E, U+2066..U+2069) - else 0. */
static unsigned
format_control(const unsigned char *s, size_t n)
{
    unsigned cp;

    if (n == 2 && s[0] == 0xC2 && s[1] <= 0x9F)
        return s[1];
    if (n != 3 || s[0] != 0xE2)
        return 0;
    cp = 0x2000u | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) ? cp : 0;
}

static void
put_escaped(FILE *out, const char *str, int json)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned cp;
    size_t n;
    const char *bs = json ? "\\\\" : "\\";

    while (*s != '\0') {
        n = utf8_seq_len(s);
        if (n == 0) {
            fprintf(out, "%sx%02x", bs, *s);
            s++;
            continue;
        }
        if (n > 1) {
            cp = format_control(s, n);
            if (cp != 0)
                fprintf(out, "\\u%04x", cp); /* decodes to itself in JSON too */
            else
                fwrite(s, 1, n, out);
            s += n;
            continue;
        }
        switch (*s) {
        case '\\':
            fputs(json ? "\\\\\\\\" : "\\\\", out);
            break;
        case '"':
            fputs(json ? "\\\"" : "\"", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        case '\t':
            fputs("\\t", out);
            break;
        case '\r':
            fputs("\\r", out);
            break;
        default:
            if (*s < 0x20 || *s == 0x7F) {
                if (json)
                    fprintf(out, "\\u%04x", *s);
                else
                    fprintf(out, "\\x%02x", *s);
            } else {
                fputc(*s, out);
            }
        }
        s++;
    }
}

void
lt_fputs_escaped(FILE *out, const char *s)
{
    put_escaped(out, s, 0);
}

void
lt_fputs_json(FILE *out, const char *s)
{
    put_escaped(out, s, 1);
}

static int
letter_shown(const lt_config *cfg, unsigned i)
{
    return !(cfg->yo == JOBQ_LETTERS_YO_IGNORE && i == JOBQ_LETTERS_YO_INDEX);
}

static const char *
enc_label(jobq_letters_encoding enc)
{
    /* AUTO after counting means the file held no non-ASCII byte at all. */
    return enc == JOBQ_LETTERS_AUTO ? "ascii" : jobq_letters_encoding_name(enc);
}

static void
json_letters(FILE *out, const lt_config *cfg, const jobq_letters_counts *c)
{
    unsigned i;
    int first = 1;

    fputc('{', out);
    for (i = 0; i < JOBQ_LETTERS_COUNT; i++) {
        if (!letter_shown(cfg, i))
            continue;
        fprintf(out, "%s\"%s\": %llu", first ? "" : ", ", jobq_letters_name(i),
                (unsigned long long)c->n[i]);
        first = 0;
    }
    fputc('}', out);
}

static void
print_json(FILE *out, const lt_config *cfg, const lt_report *rep)
{
    size_t i;
    const lt_record *r;

    fprintf(out, "{\"files\": %llu, \"bytes\": %llu, \"total\": %llu, \"letters\": ",
            (unsigned long long)rep->files, (unsigned long long)rep->bytes,
            (unsigned long long)jobq_letters_total(&rep->counts));
    json_letters(out, cfg, &rep->counts);
    fputs(", \"errors\": [", out);
    for (i = 0; i < rep->n_errors; i++) {
        fputs(i ? ", {\"path\": \"" : "{\"path\": \"", out);
        lt_fputs_json(out, rep->errors[i].path);
        fputs("\", \"error\": \"", out);
        lt_fputs_json(out, rep->errors[i].msg);
        fputs("\"}", out);
    }
    fputc(']', out);
    if (cfg->per_file) {
        fputs(", \"per_file\": [", out);
        for (i = 0; i < rep->n_records; i++) {
            r = &rep->records[i];
            fputs(i ? ", {\"path\": \"" : "{\"path\": \"", out);
            lt_fputs_json(out, r->path);
            fprintf(out,
                    "\", \"encoding\": \"%s\", \"bytes\": %llu, \"total\": %llu, "
                    "\"letters\": ",
                    enc_label(r->enc), (unsigned long long)r->bytes,
                    (unsigned long long)jobq_letters_total(&r->counts));
            json_letters(out, cfg, &r->counts);
            fputc('}', out);
        }
        fputc(']', out);
    }
    fputs("}\n", out);
}

/* Letter indices in output order. */
static unsigned
order_letters(const lt_config *cfg, const jobq_letters_counts *c, unsigned *idx)
{
    unsigned i, j, n = 0, t;

    for (i = 0; i < JOBQ_LETTERS_COUNT; i++) {
        if (letter_shown(cfg, i))
            idx[n++] = i;
    }
    if (cfg->sort == LT_SORT_COUNT) {
        /* Insertion sort, stable: ties stay alphabetical. */
        for (i = 1; i < n; i++) {
            t = idx[i];
            for (j = i; j > 0 && c->n[idx[j - 1]] < c->n[t]; j--)
                idx[j] = idx[j - 1];
            idx[j] = t;
        }
    }
    return n;
}

static double
percent(uint64_t n, uint64_t total)
{
    return total ? 100.0 * (double)n / (double)total : 0.0;
}

static void
print_csv(FILE *out, const lt_config *cfg, const lt_report *rep)
{
    unsigned idx[JOBQ_LETTERS_COUNT], n, i;
    uint64_t total = jobq_letters_total(&rep->counts);

    n = order_letters(cfg, &rep->counts, idx);
    fputs("letter,count,percent\n", out);
    for (i = 0; i < n; i++) {
        fprintf(out, "%s,%llu,%.4f\n", jobq_letters_name(idx[i]),
                (unsigned long long)rep->counts.n[idx[i]], percent(rep->counts.n[idx[i]], total));
    }
}

static void
print_table(FILE *out, const lt_config *cfg, const lt_report *rep)
{
    unsigned idx[JOBQ_LETTERS_COUNT], n, i, w, k;
    uint64_t total = jobq_letters_total(&rep->counts), max = 0;
    const lt_record *r;
    size_t j;

    if (cfg->per_file) {
        fprintf(out, "%-8s %14s %14s  %s\n", "encoding", "bytes", "letters", "path");
        for (j = 0; j < rep->n_records; j++) {
            r = &rep->records[j];
            fprintf(out, "%-8s %14llu %14llu  ", enc_label(r->enc), (unsigned long long)r->bytes,
                    (unsigned long long)jobq_letters_total(&r->counts));
            lt_fputs_escaped(out, r->path);
            fputc('\n', out);
        }
        fputc('\n', out);
    }
    n = order_letters(cfg, &rep->counts, idx);
    for (i = 0; i < n; i++) {
        if (rep->counts.n[idx[i]] > max)
            max = rep->counts.n[idx[i]];
    }
    fprintf(out, "letter %14s %8s\n", "count", "percent");
    for (i = 0; i < n; i++) {
        /* Cyrillic letters are 2 bytes but one column: pad by hand. */
        fprintf(out, "%s      %14llu %7.2f%%  ", jobq_letters_name(idx[i]),
                (unsigned long long)rep->counts.n[idx[i]], percent(rep->counts.n[idx[i]], total));
        w = max ? (unsigned)((rep->counts.n[idx[i]] * (double)BAR_WIDTH) / (double)max + 0.5) : 0;
        for (k = 0; k < w; k++)
            fputs("\xe2\x96\x88", out); /* U+2588 FULL BLOCK */
        fputc('\n', out);
    }
    fprintf(out, "total  %14llu  letters in %llu file%s, %llu bytes\n", (unsigned long long)total,
            (unsigned long long)rep->files, rep->files == 1 ? "" : "s",
            (unsigned long long)rep->bytes);
}

void
lt_print_report(FILE *out, const lt_config *cfg, const lt_report *rep)
{
    switch (cfg->format) {
    case LT_FORMAT_JSON:
        print_json(out, cfg, rep);
        break;
    case LT_FORMAT_CSV:
        print_csv(out, cfg, rep);
        break;
    default:
        print_table(out, cfg, rep);
    }
}
