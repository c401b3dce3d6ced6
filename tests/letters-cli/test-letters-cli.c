/*
 * test-letters-cli.c - black-box tests of the jobq-letters executable.
 *
 * Each test builds a temporary tree, runs the built binary (path in $JOBQ_LETTERS) with
 * posix_spawn, and checks its exit status, its stderr messages and its JSON output. The JSON is
 * parsed by a small strict parser below (valid UTF-8, no raw control characters), and the counts
 * are compared with jobq_letters_count_buffer() over the same bytes (the kernel has its own
 * reference tests against an iconv-based counter) or, for the shared corpus, with the
 * independent counts in expected.json. Text in cp1251 / koi8-r is produced with iconv(3) here.
 */
/* nftw() and getrusage() are XSI. */
#define _XOPEN_SOURCE 700

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <iconv.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jobq/letters.h>

extern char **environ;

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                               */
/* ------------------------------------------------------------------------------------------ */

static char *
xstrdupf(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *s;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0);
    s = malloc((size_t)n + 1);
    cr_assert(s != NULL);
    va_start(ap, fmt);
    (void)vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static void
write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    cr_assert(f != NULL, "cannot create %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static char *
read_file(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    cr_assert(f != NULL, "cannot open %s: %s", path, strerror(errno));
    for (;;) {
        if (cap - len < 65536) {
            cap = cap ? 2 * cap : 65536;
            buf = realloc(buf, cap + 1);
            cr_assert(buf != NULL);
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    (void)fclose(f);
    buf[len] = '\0';
    if (ret_len != NULL)
        *ret_len = len;
    return buf;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    (void)chmod(path, 0700);
    return remove(path);
}

static char *
make_tmpdir(void)
{
    char *dir = strdup("/tmp/jobq-letters-cli-XXXXXX");

    cr_assert(dir != NULL);
    cr_assert(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    return dir;
}

static void
remove_tree(char *dir)
{
    (void)nftw(dir, rm_entry, 64, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* Convert UTF-8 text to `to` with iconv; fails the test if anything does not convert. */
static char *
convert(const char *text, const char *to, size_t *ret_len)
{
    iconv_t cd = iconv_open(to, "UTF-8");
    size_t inleft = strlen(text), outcap = inleft + 16, outleft = outcap;
    char *out = malloc(outcap), *in = (char *)text, *op = out;

    cr_assert_neq(cd, (iconv_t)-1, "iconv_open(%s): %s", to, strerror(errno));
    cr_assert(out != NULL);
    cr_assert_neq(iconv(cd, &in, &inleft, &op, &outleft), (size_t)-1, "iconv to %s: %s", to,
                  strerror(errno));
    (void)iconv_close(cd);
    *ret_len = (size_t)(op - out);
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* Running the binary                                                                          */
/* ------------------------------------------------------------------------------------------ */

typedef struct cli {
    pid_t pid;
    char *out_path, *err_path;
    int status; /* exit status, or 128 + signal */
    char *out, *err;
    size_t out_len;
} cli;

static const char *
exe(void)
{
    const char *p = getenv("JOBQ_LETTERS");

    cr_assert(p != NULL, "JOBQ_LETTERS (path of jobq-letters) is not set; run through meson");
    return p;
}

#define HOOK_ENV "JOBQ_LETTERS_TEST_HOOK="

static const char *
hooked_exe(void)
{
    const char *p = getenv("JOBQ_LETTERS_HOOKED");

    cr_assert(p != NULL, "JOBQ_LETTERS_HOOKED (jobq-letters with test hooks) is not set");
    return p;
}

static void
cli_spawn(cli *c, const char *const *args, const char *extra_env)
{
    posix_spawn_file_actions_t fa;
    char *argv[64], **envp;
    size_t n = 0, i, ne = 0;
    int fo, fe, err;

    memset(c, 0, sizeof *c);
    c->out_path = strdup("/tmp/jobq-letters-out-XXXXXX");
    c->err_path = strdup("/tmp/jobq-letters-err-XXXXXX");
    fo = mkstemp(c->out_path);
    fe = mkstemp(c->err_path);
    cr_assert(fo >= 0 && fe >= 0);
    /* Only the hooked copy of the tool has the test hook. */
    argv[n++] = (char *)(extra_env != NULL && strncmp(extra_env, HOOK_ENV, strlen(HOOK_ENV)) == 0
                             ? hooked_exe()
                             : exe());
    for (i = 0; args[i] != NULL; i++) {
        cr_assert(n < 63);
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    while (environ[ne] != NULL)
        ne++;
    envp = calloc(ne + 2, sizeof *envp);
    cr_assert(envp != NULL);
    memcpy(envp, environ, ne * sizeof *envp);
    if (extra_env != NULL)
        envp[ne++] = (char *)extra_env;
    envp[ne] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fo, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, fe, STDERR_FILENO);
    err = posix_spawn(&c->pid, argv[0], &fa, NULL, argv, envp);
    cr_assert_eq(err, 0, "posix_spawn %s: %s", argv[0], strerror(err));
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    (void)close(fo);
    (void)close(fe);
}

static void
cli_wait(cli *c)
{
    int st;

    while (waitpid(c->pid, &st, 0) < 0)
        cr_assert_eq(errno, EINTR);
    c->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    c->out = read_file(c->out_path, &c->out_len);
    c->err = read_file(c->err_path, NULL);
    (void)unlink(c->out_path);
    (void)unlink(c->err_path);
    cr_assert_lt(c->status, 128, "jobq-letters died of signal %d; stderr:\n%s", c->status - 128,
                 c->err);
}

/* Run with a NULL-terminated argument list. */
static void
cli_run(cli *c, ...)
{
    const char *args[64];
    size_t n = 0;
    va_list ap;

    va_start(ap, c);
    while ((args[n] = va_arg(ap, const char *)) != NULL) {
        cr_assert(n < 63);
        n++;
    }
    va_end(ap);
    cli_spawn(c, args, NULL);
    cli_wait(c);
}

static void
cli_free(cli *c)
{
    free(c->out);
    free(c->err);
    free(c->out_path);
    free(c->err_path);
}

/* ------------------------------------------------------------------------------------------ */
/* A strict little JSON parser                                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct jv {
    char type; /* 'o' object, 'a' array, 's' string, 'n' number, 'b' true/false/null */
    char *str; /* string value (decoded) or number text */
    size_t n;
    char **keys;     /* objects */
    struct jv *item; /* objects and arrays */
} jv;

typedef struct jp {
    const unsigned char *p, *end;
    const char *why;
} jp;

static int parse_value(jp *j, jv *v);

static void
skip_ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r'))
        j->p++;
}

static int
fail(jp *j, const char *why)
{
    j->why = why;
    return -1;
}

static int
utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0, n, k;

    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        if (s[i] >= 0xC2 && s[i] <= 0xDF)
            n = 2;
        else if (s[i] >= 0xE0 && s[i] <= 0xEF)
            n = 3;
        else if (s[i] >= 0xF0 && s[i] <= 0xF4)
            n = 4;
        else
            return 0;
        if (i + n > len)
            return 0;
        for (k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        }
        i += n;
    }
    return 1;
}

static int
parse_string(jp *j, char **ret)
{
    size_t cap = 32, len = 0;
    char *s = malloc(cap);
    unsigned cp;
    int k;

    cr_assert(s != NULL);
    j->p++; /* opening quote */
    for (;;) {
        if (len + 8 > cap) {
            cap *= 2;
            s = realloc(s, cap);
            cr_assert(s != NULL);
        }
        if (j->p >= j->end) {
            free(s);
            return fail(j, "unterminated string");
        }
        if (*j->p == '"') {
            j->p++;
            break;
        }
        if (*j->p < 0x20) {
            free(s);
            return fail(j, "raw control character in a string");
        }
        if (*j->p != '\\') {
            s[len++] = (char)*j->p++;
            continue;
        }
        j->p++;
        if (j->p >= j->end) {
            free(s);
            return fail(j, "bad escape");
        }
        switch (*j->p++) {
        case '"': s[len++] = '"'; break;
        case '\\': s[len++] = '\\'; break;
        case '/': s[len++] = '/'; break;
        case 'b': s[len++] = '\b'; break;
        case 'f': s[len++] = '\f'; break;
        case 'n': s[len++] = '\n'; break;
        case 'r': s[len++] = '\r'; break;
        case 't': s[len++] = '\t'; break;
        case 'u':
            cp = 0;
            for (k = 0; k < 4; k++) {
                if (j->p >= j->end || strchr("0123456789abcdefABCDEF", *j->p) == NULL ||
                    *j->p == '\0') {
                    free(s);
                    return fail(j, "bad \\u escape");
                }
                cp = cp * 16 + (unsigned)(*j->p <= '9' ? *j->p - '0' : (*j->p | 32) - 'a' + 10);
                j->p++;
            }
            /* Our output only needs the BMP below the surrogates. */
            if (cp >= 0xD800 && cp <= 0xDFFF) {
                free(s);
                return fail(j, "surrogate escape");
            }
            if (cp < 0x80) {
                s[len++] = (char)cp;
            } else if (cp < 0x800) {
                s[len++] = (char)(0xC0 | (cp >> 6));
                s[len++] = (char)(0x80 | (cp & 0x3F));
            } else {
                s[len++] = (char)(0xE0 | (cp >> 12));
                s[len++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                s[len++] = (char)(0x80 | (cp & 0x3F));
            }
            break;
        default:
            free(s);
            return fail(j, "bad escape");
        }
    }
    s[len] = '\0';
    *ret = s;
    return 0;
}

static void jv_free(jv *v);

static int
parse_container(jp *j, jv *v, char close)
{
    size_t cap = 0;
    jv item;
    char *key = NULL;

    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return 0;
    }
    for (;;) {
        skip_ws(j);
        if (close == '}') {
            if (j->p >= j->end || *j->p != '"' || parse_string(j, &key) != 0)
                return j->why ? -1 : fail(j, "expected a key");
            skip_ws(j);
            if (j->p >= j->end || *j->p != ':') {
                free(key);
                return fail(j, "expected ':'");
            }
            j->p++;
        }
        if (parse_value(j, &item) != 0) {
            free(key);
            return -1;
        }
        if (v->n == cap) {
            cap = cap ? 2 * cap : 8;
            v->item = realloc(v->item, cap * sizeof *v->item);
            v->keys = realloc(v->keys, cap * sizeof *v->keys);
            cr_assert(v->item != NULL && v->keys != NULL);
        }
        v->item[v->n] = item;
        v->keys[v->n] = key;
        v->n++;
        key = NULL;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return 0;
        }
        return fail(j, "expected ',' or a closing bracket");
    }
}

static int
parse_value(jp *j, jv *v)
{
    const unsigned char *start;

    memset(v, 0, sizeof *v);
    skip_ws(j);
    if (j->p >= j->end)
        return fail(j, "unexpected end");
    switch (*j->p) {
    case '{':
        v->type = 'o';
        return parse_container(j, v, '}');
    case '[':
        v->type = 'a';
        return parse_container(j, v, ']');
    case '"':
        v->type = 's';
        return parse_string(j, &v->str);
    default:
        break;
    }
    start = j->p;
    if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')) {
        v->type = 'n';
        while (j->p < j->end && strchr("+-0123456789.eE", *j->p) != NULL && *j->p != '\0')
            j->p++;
    } else {
        v->type = 'b';
        while (j->p < j->end && *j->p >= 'a' && *j->p <= 'z')
            j->p++;
        if (!((j->p - start == 4 && memcmp(start, "true", 4) == 0) ||
              (j->p - start == 5 && memcmp(start, "false", 5) == 0) ||
              (j->p - start == 4 && memcmp(start, "null", 4) == 0)))
            return fail(j, "unexpected token");
    }
    v->str = strndup((const char *)start, (size_t)(j->p - start));
    cr_assert(v->str != NULL);
    return 0;
}

static void
jv_free(jv *v)
{
    size_t i;

    for (i = 0; i < v->n; i++) {
        jv_free(&v->item[i]);
        if (v->keys != NULL)
            free(v->keys[i]);
    }
    free(v->item);
    free(v->keys);
    free(v->str);
}

/* Parse a whole document; fails the test with the reason when it is not strict JSON. */
static void
json_parse(const char *text, size_t len, jv *root)
{
    jp j = {(const unsigned char *)text, (const unsigned char *)text + len, NULL};

    cr_assert(utf8_valid(j.p, len), "output is not valid UTF-8:\n%s", text);
    cr_assert_eq(parse_value(&j, root), 0, "bad JSON (%s) at offset %zu:\n%s", j.why,
                 (size_t)(j.p - (const unsigned char *)text), text);
    skip_ws(&j);
    cr_assert_eq(j.p, j.end, "trailing data after the JSON value:\n%s", text);
}

static const jv *
jv_get(const jv *o, const char *key)
{
    size_t i;

    cr_assert_eq(o->type, 'o');
    for (i = 0; i < o->n; i++) {
        if (strcmp(o->keys[i], key) == 0)
            return &o->item[i];
    }
    return NULL;
}

static unsigned long long
jv_num(const jv *o, const char *key)
{
    const jv *v = jv_get(o, key);

    cr_assert(v != NULL, "no \"%s\" in the JSON", key);
    cr_assert_eq(v->type, 'n', "\"%s\" is not a number", key);
    return strtoull(v->str, NULL, 10);
}

/* The letters object must list exactly the expected letters, in alphabetical order. */
static void
check_letters(const jv *letters, const jobq_letters_counts *want, jobq_letters_yo yo)
{
    unsigned i, k = 0;

    cr_assert(letters != NULL);
    cr_assert_eq(letters->type, 'o');
    for (i = 0; i < JOBQ_LETTERS_COUNT; i++) {
        if (yo == JOBQ_LETTERS_YO_IGNORE && i == JOBQ_LETTERS_YO_INDEX)
            continue;
        cr_assert_lt(k, letters->n, "letters object too short");
        cr_assert_str_eq(letters->keys[k], jobq_letters_name(i));
        cr_assert_eq(strtoull(letters->item[k].str, NULL, 10), want->n[i],
                     "letter %s: %s, expected %llu", jobq_letters_name(i), letters->item[k].str,
                     (unsigned long long)want->n[i]);
        k++;
    }
    cr_assert_eq(k, letters->n, "letters object has %zu entries, expected %u", letters->n, k);
}

/* Does the "errors" array hold an entry whose decoded path is `path`? */
static int
has_error_for(const jv *root, const char *path)
{
    const jv *errs = jv_get(root, "errors");
    size_t i;

    cr_assert(errs != NULL);
    for (i = 0; i < errs->n; i++) {
        if (strcmp(jv_get(&errs->item[i], "path")->str, path) == 0)
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Reference counts                                                                            */
/* ------------------------------------------------------------------------------------------ */

static void
apply_yo(jobq_letters_counts *c, jobq_letters_yo yo)
{
    if (yo == JOBQ_LETTERS_YO_MERGE)
        c->n[5] += c->n[JOBQ_LETTERS_YO_INDEX];
    if (yo != JOBQ_LETTERS_YO_SEPARATE)
        c->n[JOBQ_LETTERS_YO_INDEX] = 0;
}

static void
ref_add(jobq_letters_counts *c, jobq_letters_encoding enc, const void *buf, size_t len)
{
    jobq_letters_count_buffer(enc, buf, len, c);
}

/* Russian text (UTF-8) that converts losslessly to cp1251 and koi8-r. */
static const char sample[] =
    "Мой дядя самых честных правил, Когда не в шутку занемог, Он уважать себя заставил "
    "И лучше выдумать не мог. Съешь же ещё этих мягких французских булок, да выпей чаю! "
    "ЭХ, ЧУЖАК, ОБЩИЙ СЪЁМ ЦЕН ШЛЯП (ЮФТЬ) - ВДРЫЗГ! Ёлка, ёжик; Latin abc 123.\n";

/* Decomposed й (и + U+0306) and ё (е + U+0308), and a 3-byte character (№): UTF-8 only. */
static const char sample_utf8_extra[] = "Мои\xcc\x86 е\xcc\x88ж №5 — «ёлки»\n";

/* A file of about `size` bytes made of copies of text. */
static char *
repeat(const char *text, size_t tlen, size_t size, size_t *ret_len)
{
    char *buf = malloc(size + tlen);
    size_t len = 0;

    cr_assert(buf != NULL);
    while (len < size) {
        memcpy(buf + len, text, tlen);
        len += tlen;
    }
    *ret_len = len;
    return buf;
}

/* ------------------------------------------------------------------------------------------ */
/* Tests                                                                                       */
/* ------------------------------------------------------------------------------------------ */

Test(letters_cli, help_and_version, .timeout = 30)
{
    cli c;

    cli_run(&c, "--help", NULL);
    cr_assert_eq(c.status, 0);
    cr_assert(strstr(c.out, "Exit status") != NULL, "--help documents the exit codes");
    cr_assert(strstr(c.out, "thread-per-file") != NULL);
    cli_free(&c);
    cli_run(&c, "--version", NULL);
    cr_assert_eq(c.status, 0);
    cr_assert(strstr(c.out, "jobq-letters") != NULL);
    cli_free(&c);
}

/* Output that cannot be written is a failure, for --help and --version too. */
Test(letters_cli, unwritable_output_exits_2, .timeout = 30)
{
    char *dir, *file, cmd[2 * PATH_MAX + 64];
    const char *opts[3];
    size_t i;
    int st;

    if (access("/dev/full", W_OK) != 0)
        cr_skip_test("no /dev/full");
    dir = make_tmpdir();
    file = xstrdupf("%s/t.txt", dir);
    write_file(file, "Да", 4);
    opts[0] = "--help";
    opts[1] = "--version";
    opts[2] = file; /* the report itself; the same file counts fine to a pipe */
    for (i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        (void)snprintf(cmd, sizeof cmd, "'%s' -q '%s' >/dev/full 2>/dev/null", exe(), opts[i]);
        st = system(cmd);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%s: status %d", opts[i], st);
        (void)snprintf(cmd, sizeof cmd, "'%s' -q '%s' >/dev/null", exe(), opts[i]);
        st = system(cmd);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: status %d", opts[i], st);
    }
    free(file);
    remove_tree(dir);
}

Test(letters_cli, usage_errors_exit_2, .timeout = 30)
{
    static const char *const bad[][4] = {
        {NULL},
        {"--mode", "bogus", ".", NULL},
        {"-j", "0", ".", NULL},
        {"--encoding", "latin1", ".", NULL},
        {"--format", "xml", ".", NULL},
        {"--yo", "maybe", ".", NULL},
        {"--no-such-option", ".", NULL},
    };
    size_t i;
    cli c;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cli_spawn(&c, bad[i], NULL);
        cli_wait(&c);
        cr_assert_eq(c.status, 2, "case %zu: exit %d, stderr: %s", i, c.status, c.err);
        cr_assert(strstr(c.err, "--help") != NULL, "case %zu: stderr points to --help", i);
        cr_assert_eq(c.out_len, 0, "case %zu: nothing on stdout", i);
        cli_free(&c);
    }
}

/* A tree in three encodings, nested, with a big file split into chunks by pool and chunks. */
typedef struct tree {
    char *dir;
    jobq_letters_counts want;
    uint64_t bytes;
    unsigned files;
} tree;

static void
add_file(tree *t, const char *rel, jobq_letters_encoding enc, const void *data, size_t len)
{
    char *path = xstrdupf("%s/%s", t->dir, rel);

    write_file(path, data, len);
    ref_add(&t->want, enc, data, len);
    t->bytes += len;
    t->files++;
    free(path);
}

static void
build_mixed_tree(tree *t)
{
    char *p, *buf, *u8;
    size_t len, n;

    memset(t, 0, sizeof *t);
    t->dir = make_tmpdir();
    p = xstrdupf("%s/sub", t->dir);
    cr_assert_eq(mkdir(p, 0755), 0);
    free(p);
    p = xstrdupf("%s/sub/deeper", t->dir);
    cr_assert_eq(mkdir(p, 0755), 0);
    free(p);
    add_file(t, "a.txt", JOBQ_LETTERS_UTF8, sample, strlen(sample));
    buf = convert(sample, "CP1251", &len);
    add_file(t, "sub/b-cp1251.txt", JOBQ_LETTERS_CP1251, buf, len);
    free(buf);
    buf = convert(sample, "KOI8-R", &len);
    add_file(t, "sub/deeper/c-koi8r.txt", JOBQ_LETTERS_KOI8R, buf, len);
    free(buf);
    /* Over 8 MiB, so that --mode pool splits it too; odd-length text so that chunk borders
     * fall inside multibyte characters. */
    u8 = xstrdupf("%s%s", sample, sample_utf8_extra);
    buf = repeat(u8, strlen(u8), 9u * 1024 * 1024 + 12345, &n);
    add_file(t, "sub/big-utf8.txt", JOBQ_LETTERS_UTF8, buf, n);
    free(buf);
    free(u8);
    u8 = convert(sample, "CP1251", &len);
    buf = repeat(u8, len, 3u * 1024 * 1024, &n);
    add_file(t, "big-cp1251.txt", JOBQ_LETTERS_CP1251, buf, n);
    free(buf);
    free(u8);
}

static void
check_totals(const jv *root, const tree *t)
{
    cr_assert_eq(jv_num(root, "files"), t->files);
    cr_assert_eq(jv_num(root, "bytes"), t->bytes);
    cr_assert_eq(jv_num(root, "total"), jobq_letters_total(&t->want));
    check_letters(jv_get(root, "letters"), &t->want, JOBQ_LETTERS_YO_SEPARATE);
    cr_assert_eq(jv_get(root, "errors")->n, 0);
}

Test(letters_cli, every_mode_and_thread_count_prints_identical_json, .timeout = 300)
{
    static const char *const runs[][8] = {
        {"--mode", "sequential", NULL},
        {"--mode", "pool", "-j", "1", NULL},
        {"--mode", "pool", "-j", "2", NULL},
        {"--mode", "pool", "-j", "8", NULL},
        {"--mode", "thread-per-file", NULL},
        {"--mode", "queues", "-j", "1", NULL},
        {"--mode", "queues", "-j", "2", NULL},
        {"--mode", "queues", "-j", "8", NULL},
        {"--mode", "chunks", "-j", "1", NULL},
        {"--mode", "chunks", "-j", "2", NULL},
        {"--mode", "chunks", "-j", "8", "--chunk-size", "4097", NULL},
        {"--mode", "pool", "-j", "2", "--chunk-size", "65537", NULL},
    };
    const char *args[16];
    char *first = NULL;
    size_t i, k;
    tree t;
    cli c;
    jv root;

    build_mixed_tree(&t);
    for (i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        for (k = 0; runs[i][k] != NULL; k++)
            args[k] = runs[i][k];
        args[k++] = "--format";
        args[k++] = "json";
        args[k++] = "--per-file";
        args[k++] = t.dir;
        args[k] = NULL;
        cli_spawn(&c, args, NULL);
        cli_wait(&c);
        cr_assert_eq(c.status, 0, "run %zu (%s %s): exit %d\n%s", i, runs[i][0], runs[i][1],
                     c.status, c.err);
        if (first == NULL) {
            json_parse(c.out, c.out_len, &root);
            check_totals(&root, &t);
            cr_assert_eq(jv_get(&root, "per_file")->n, t.files);
            jv_free(&root);
            first = strdup(c.out);
        } else {
            cr_assert_str_eq(c.out, first, "run %zu (%s %s %s %s) differs from sequential", i,
                             runs[i][0], runs[i][1], runs[i][2] ? runs[i][2] : "",
                             runs[i][2] && runs[i][3] ? runs[i][3] : "");
        }
        cli_free(&c);
    }
    free(first);
    remove_tree(t.dir);
}

/* Chunked counting of one file equals sequential counting, also when every chunk border cuts a
 * multibyte character (tiny chunks on a small file) or a combining mark follows a border. */
static void
check_chunks_equal_sequential(size_t file_size, const char *const *sizes, size_t n_sizes)
{
    char *dir = make_tmpdir(), *path = xstrdupf("%s/big.txt", dir), *u8, *buf, *seq;
    size_t n, i;
    cli c;
    jv root;
    jobq_letters_counts want;

    u8 = xstrdupf("%s%s", sample_utf8_extra, sample);
    buf = repeat(u8, strlen(u8), file_size, &n);
    write_file(path, buf, n);
    memset(&want, 0, sizeof want);
    ref_add(&want, JOBQ_LETTERS_UTF8, buf, n);
    cli_run(&c, "--mode", "sequential", "-f", "json", path, NULL);
    cr_assert_eq(c.status, 0, "%s", c.err);
    json_parse(c.out, c.out_len, &root);
    check_letters(jv_get(&root, "letters"), &want, JOBQ_LETTERS_YO_SEPARATE);
    cr_assert_eq(jv_num(&root, "bytes"), n);
    jv_free(&root);
    seq = c.out;
    c.out = NULL;
    cli_free(&c);
    for (i = 0; i < n_sizes; i++) {
        cli_run(&c, "--mode", "chunks", "-j", "2", "--chunk-size", sizes[i], "-f", "json", path,
                NULL);
        cr_assert_eq(c.status, 0, "%s", c.err);
        cr_assert_str_eq(c.out, seq, "chunk size %s", sizes[i]);
        cli_free(&c);
    }
    free(seq);
    free(buf);
    free(u8);
    free(path);
    remove_tree(dir);
}

Test(letters_cli, chunks_equal_sequential_on_one_big_file, .timeout = 300)
{
    static const char *const sizes[] = {"4097", "65537", "1M"};

    check_chunks_equal_sequential(5u * 1024 * 1024 + 3, sizes, 3);
}

Test(letters_cli, tiny_chunks_cut_every_character, .timeout = 300)
{
    static const char *const sizes[] = {"1", "2", "3", "5"};

    check_chunks_equal_sequential(2048, sizes, 4);
}

Test(letters_cli, bad_inputs_are_named_and_the_rest_is_counted, .timeout = 120)
{
    static const char *const modes[] = {"sequential", "pool", "thread-per-file", "queues",
                                        "chunks"};
    char *dir = make_tmpdir(), *p, *badname, *nlname, *missing, *first = NULL;
    jobq_letters_counts want;
    static const unsigned char utf16[] = {0xFF, 0xFE, 0x1F, 0x04, 0x40, 0x04, 0x38, 0x04};
    /* "中文\n": no control byte right after the mark, a NUL later. */
    static const unsigned char cjk16[] = {0xFE, 0xFF, 0x4E, 0x2D, 0x65, 0x87, 0x00, 0x0A};
    size_t i;
    cli c;
    jv root;

    memset(&want, 0, sizeof want);
    p = xstrdupf("%s/good.txt", dir);
    write_file(p, sample, strlen(sample));
    ref_add(&want, JOBQ_LETTERS_UTF8, sample, strlen(sample));
    free(p);
    p = xstrdupf("%s/empty.txt", dir);
    write_file(p, "", 0);
    free(p);
    p = xstrdupf("%s/binary.bin", dir);
    write_file(p, "\x7f" "ELF\0\0\0Привет", sizeof("\x7f" "ELF\0\0\0Привет") - 1);
    free(p);
    p = xstrdupf("%s/utf16.txt", dir);
    write_file(p, utf16, sizeof utf16);
    free(p);
    p = xstrdupf("%s/cjk16.txt", dir);
    write_file(p, cjk16, sizeof cjk16);
    free(p);
    p = xstrdupf("%s/fifo", dir);
    cr_assert_eq(mkfifo(p, 0644), 0);
    free(p);
    p = xstrdupf("%s/loop-a", dir);
    cr_assert_eq(symlink("loop-b", p), 0);
    free(p);
    p = xstrdupf("%s/loop-b", dir);
    cr_assert_eq(symlink("loop-a", p), 0);
    free(p);
    badname = xstrdupf("%s/bad\xff\xfe-name.txt", dir);
    write_file(badname, "Да", 4);
    ref_add(&want, JOBQ_LETTERS_UTF8, "Да", 4);
    nlname = xstrdupf("%s/new\nline.txt", dir);
    write_file(nlname, "Нет", 6);
    ref_add(&want, JOBQ_LETTERS_UTF8, "Нет", 6);
    missing = xstrdupf("%s/does-not-exist", dir);

    for (i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        cli_run(&c, "--mode", modes[i], "-j", "2", "--follow", "-f", "json", dir, missing,
                NULL);
        cr_assert_eq(c.status, 1, "%s: some inputs failed -> exit 1, got %d\n%s", modes[i],
                     c.status, c.err);
        json_parse(c.out, c.out_len, &root);
        cr_assert_eq(jv_num(&root, "files"), 4, "good, empty, bad-name, newline-name");
        check_letters(jv_get(&root, "letters"), &want, JOBQ_LETTERS_YO_SEPARATE);
        cr_assert(has_error_for(&root, missing), "missing path in errors");
        p = xstrdupf("%s/utf16.txt", dir);
        cr_assert(has_error_for(&root, p), "UTF-16 reported as an error");
        cr_assert(strstr(c.err, p) != NULL, "stderr names %s:\n%s", p, c.err);
        cr_assert(strstr(c.err, "UTF-16") != NULL);
        free(p);
        p = xstrdupf("%s/cjk16.txt", dir);
        cr_assert(has_error_for(&root, p), "CJK UTF-16 reported as an error");
        cr_assert(strstr(c.err, "cjk16.txt: UTF-16BE text") != NULL, "%s", c.err);
        free(p);
        p = xstrdupf("%s/loop-a", dir);
        cr_assert(has_error_for(&root, p), "symlink loop reported");
        cr_assert(strstr(c.err, "symlink loop") != NULL, "%s", c.err);
        free(p);
        cr_assert(strstr(c.err, missing) != NULL);
        cr_assert(strstr(c.err, "no such file") != NULL, "%s", c.err);
        cr_assert(strstr(c.err, "binary.bin: binary file") != NULL, "%s", c.err);
        cr_assert(strstr(c.err, "fifo: a FIFO, skipped") != NULL, "%s", c.err);
        cr_assert(strstr(c.err, "empty.txt: empty file") != NULL, "%s", c.err);
        jv_free(&root);
        if (first == NULL)
            first = strdup(c.out);
        else
            cr_assert_str_eq(c.out, first, "mode %s differs", modes[i]);
        cli_free(&c);
    }
    /* Escaping: the invalid bytes appear as \\xff in the JSON text, the newline as \n; the
     * table and stderr use the same readable escapes, never raw bytes. */
    cli_run(&c, "--per-file", "-f", "json", dir, NULL);
    cr_assert(strstr(c.out, "bad\\\\xff\\\\xfe-name.txt") != NULL, "%s", c.out);
    cr_assert(strstr(c.out, "new\\nline.txt") != NULL, "%s", c.out);
    json_parse(c.out, c.out_len, &root); /* raw control bytes or invalid UTF-8 would fail */
    jv_free(&root);
    cli_free(&c);
    cli_run(&c, "--per-file", dir, NULL);
    cr_assert(strstr(c.out, "bad\\xff\\xfe-name.txt") != NULL, "%s", c.out);
    cr_assert(strstr(c.out, "new\\nline.txt") != NULL, "%s", c.out);
    cr_assert(strstr(c.out, "new\nline") == NULL, "raw newline in a path");
    cli_free(&c);
    /* Without --follow the links are skipped with a note, not errors. */
    cli_run(&c, "-f", "json", dir, NULL);
    cr_assert_eq(c.status, 1, "UTF-16 is still an error: %s", c.err);
    cr_assert(strstr(c.err, "loop-a: symbolic link, not followed") != NULL, "%s", c.err);
    cli_free(&c);
    /* --quiet drops the notes but keeps the errors. */
    cli_run(&c, "-q", "-f", "json", dir, NULL);
    cr_assert(strstr(c.err, "binary file") == NULL, "%s", c.err);
    cr_assert(strstr(c.err, "UTF-16") != NULL, "%s", c.err);
    cli_free(&c);
    /* --binary counts the binary file's letters too. */
    p = xstrdupf("%s/binary.bin", dir);
    cli_run(&c, "--binary", "-e", "utf-8", "-f", "json", p, NULL);
    cr_assert_eq(c.status, 0, "%s", c.err);
    json_parse(c.out, c.out_len, &root);
    cr_assert_eq(jv_num(&root, "files"), 1);
    cr_assert_eq(jv_num(&root, "total"), 6, "Привет");
    jv_free(&root);
    cli_free(&c);
    free(p);
    free(first);
    free(badname);
    free(nlname);
    free(missing);
    remove_tree(dir);
}

/* A C1 control (U+009B is an 8-bit CSI) or a bidi override in a name would drive the terminal
 * or reorder the line if printed raw: they are \uNNNN everywhere, and JSON decodes them back. */
Test(letters_cli, c1_and_bidi_controls_in_paths_are_escaped, .timeout = 30)
{
    char *dir = make_tmpdir(), *name = xstrdupf("%s/a\xc2\x9b" "31mb\xe2\x80\xaeZ.txt", dir);
    cli c;
    jv root;

    write_file(name, "Да", 4);
    cli_run(&c, "--per-file", dir, NULL);
    cr_assert_eq(c.status, 0, "%s", c.err);
    cr_assert(strstr(c.out, "a\\u009b31mb\\u202eZ.txt") != NULL, "%s", c.out);
    cr_assert(strstr(c.out, "\xc2\x9b") == NULL && strstr(c.out, "\xe2\x80\xae") == NULL,
              "raw control in the table");
    cli_free(&c);
    cli_run(&c, "--per-file", "-f", "json", dir, NULL);
    cr_assert(strstr(c.out, "a\\u009b31mb\\u202eZ.txt") != NULL, "%s", c.out);
    json_parse(c.out, c.out_len, &root);
    jv_free(&root);
    cli_free(&c);
    free(name);
    remove_tree(dir);
}

/* sysfs files report 4096 bytes whatever they hold: what they hold is counted, with a note,
 * not reported as a disk error. */
Test(letters_cli, file_shorter_than_its_size_is_counted, .timeout = 30)
{
    const char *path = "/sys/devices/system/cpu/online";
    struct stat st;
    char buf[4096];
    ssize_t n;
    int fd;
    cli c;
    jv root;

    fd = open(path, O_RDONLY);
    if (fd < 0 || fstat(fd, &st) != 0 || (n = read(fd, buf, sizeof buf)) < 0 ||
        (uint64_t)n >= (uint64_t)st.st_size) {
        if (fd >= 0)
            (void)close(fd);
        cr_skip_test("%s is missing or not shorter than its size", path);
    }
    (void)close(fd);
    cli_run(&c, "-f", "json", path, NULL);
    cr_assert_eq(c.status, 0, "%s", c.err);
    cr_assert(strstr(c.err, "ended after") != NULL, "%s", c.err);
    json_parse(c.out, c.out_len, &root);
    cr_assert_eq(jv_num(&root, "files"), 1);
    cr_assert_eq(jv_num(&root, "bytes"), (double)n, "%s", c.out);
    jv_free(&root);
    cli_free(&c);
}

/* A small file is detected by the stream, which knows where the file ends: a lead byte cut by
 * the end is not UTF-8 but a cp1251 letter (а in "Total: 5 а"). */
Test(letters_cli, lead_byte_at_the_end_of_a_small_file_is_a_letter, .timeout = 30)
{
    char *dir = make_tmpdir(), *file = xstrdupf("%s/t.txt", dir);
    cli c;
    jv root;

    write_file(file, "Total: 5 \xe0", 10);
    cli_run(&c, "-f", "json", file, NULL);
    cr_assert_eq(c.status, 0, "%s", c.err);
    json_parse(c.out, c.out_len, &root);
    cr_assert_eq(jv_num(&root, "total"), 1, "%s", c.out);
    jv_free(&root);
    cli_free(&c);
    free(file);
    remove_tree(dir);
}

Test(letters_cli, nothing_readable_exits_2, .timeout = 30)
{
    char *dir = make_tmpdir(), *missing = xstrdupf("%s/nope", dir);
    cli c;
    jv root;

    cli_run(&c, "-f", "json", missing, NULL);
    cr_assert_eq(c.status, 2, "%s", c.err);
    cr_assert(strstr(c.err, missing) != NULL);
    json_parse(c.out, c.out_len, &root); /* the (empty) report is still printed */
    cr_assert_eq(jv_num(&root, "files"), 0);
    cr_assert(has_error_for(&root, missing));
    jv_free(&root);
    cli_free(&c);
    free(missing);
    remove_tree(dir);
}

/* A path named on the command line that is not counted - a FIFO, a binary file - is an input
 * that failed, even with -q: inside a directory the same files are only notes. */
Test(letters_cli, named_paths_that_are_not_read_fail_the_run, .timeout = 60)
{
    static const char *const modes[] = {"sequential", "pool", "thread-per-file", "queues",
                                        "chunks"};
    char *dir = make_tmpdir(), *fifo = xstrdupf("%s/fifo", dir), *bin = xstrdupf("%s/b.bin", dir);
    char *good = xstrdupf("%s/good.txt", dir);
    size_t i;
    cli c;
    jv root;

    cr_assert_eq(mkfifo(fifo, 0644), 0);
    write_file(bin, "Да\0", 5);
    write_file(good, "Нет", 6);
    for (i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        cli_run(&c, "-q", "--mode", modes[i], "-f", "json", fifo, bin, NULL);
        cr_assert_eq(c.status, 2, "%s: nothing read -> exit 2, got %d\n%s", modes[i], c.status,
                     c.err);
        cr_assert(strstr(c.err, "fifo: a FIFO, not read") != NULL, "%s: %s", modes[i], c.err);
        cr_assert(strstr(c.err, "b.bin: binary file") != NULL, "%s: %s", modes[i], c.err);
        json_parse(c.out, c.out_len, &root);
        cr_assert_eq(jv_num(&root, "files"), 0);
        cr_assert(has_error_for(&root, fifo) && has_error_for(&root, bin), "%s", c.out);
        jv_free(&root);
        cli_free(&c);

        cli_run(&c, "-q", "--mode", modes[i], fifo, good, NULL);
        cr_assert_eq(c.status, 1, "%s: one of two failed -> exit 1, got %d\n%s", modes[i],
                     c.status, c.err);
        cli_free(&c);

        /* The directory holding them: the FIFO and the binary file are notes. */
        cli_run(&c, "--mode", modes[i], dir, NULL);
        cr_assert_eq(c.status, 0, "%s: %d\n%s", modes[i], c.status, c.err);
        cr_assert(strstr(c.err, "fifo: a FIFO, skipped") != NULL, "%s: %s", modes[i], c.err);
        cli_free(&c);
    }
    free(good);
    free(bin);
    free(fifo);
    remove_tree(dir);
}

Test(letters_cli, permission_denied, .timeout = 30)
{
    char *dir, *p, *q;
    cli c;

    if (geteuid() == 0)
        cr_skip_test("running as root: permission bits do not stop root from reading, so "
                     "'permission denied' cannot be produced here");
    dir = make_tmpdir();
    p = xstrdupf("%s/secret.txt", dir);
    q = xstrdupf("%s/open.txt", dir);
    write_file(p, sample, strlen(sample));
    write_file(q, sample, strlen(sample));
    cr_assert_eq(chmod(p, 0), 0);
    cli_run(&c, "-f", "json", dir, NULL);
    cr_assert_eq(c.status, 1, "%s", c.err);
    cr_assert(strstr(c.err, p) != NULL, "%s", c.err);
    cr_assert(strstr(c.err, "ermission denied") != NULL, "%s", c.err);
    cli_free(&c);
    free(p);
    free(q);
    remove_tree(dir);
}

Test(letters_cli, follow_detects_directory_cycles_and_counts_each_file_once, .timeout = 60)
{
    char *dir = make_tmpdir(), *p;
    jobq_letters_counts want;
    cli c;
    jv root;

    memset(&want, 0, sizeof want);
    p = xstrdupf("%s/sub", dir);
    cr_assert_eq(mkdir(p, 0755), 0);
    free(p);
    p = xstrdupf("%s/sub/text.txt", dir);
    write_file(p, sample, strlen(sample));
    ref_add(&want, JOBQ_LETTERS_UTF8, sample, strlen(sample));
    free(p);
    p = xstrdupf("%s/sub/up", dir);
    cr_assert_eq(symlink("..", p), 0);
    free(p);
    p = xstrdupf("%s/alias.txt", dir);
    cr_assert_eq(symlink("sub/text.txt", p), 0);
    free(p);
    cli_run(&c, "--follow", "-f", "json", "--per-file", dir, NULL);
    cr_assert_eq(c.status, 0, "%s", c.err);
    cr_assert(strstr(c.err, "directory cycle") != NULL, "%s", c.err);
    json_parse(c.out, c.out_len, &root);
    cr_assert_eq(jv_num(&root, "files"), 1, "one file behind three paths");
    check_letters(jv_get(&root, "letters"), &want, JOBQ_LETTERS_YO_SEPARATE);
    p = xstrdupf("%s/alias.txt", dir); /* the smallest path wins, whatever the walk order */
    cr_assert_str_eq(jv_get(&jv_get(&root, "per_file")->item[0], "path")->str, p);
    free(p);
    jv_free(&root);
    cli_free(&c);
    remove_tree(dir);
}

Test(letters_cli, many_small_files_in_bounded_memory, .timeout = 300)
{
    enum { DIRS = 20, PER_DIR = 1000 };
    char *dir = make_tmpdir(), *p;
    unsigned d, f;
    cli c;
    jv root;
    jobq_letters_counts want;
    struct rusage ru;

    memset(&want, 0, sizeof want);
    for (d = 0; d < DIRS; d++) {
        p = xstrdupf("%s/d%02u", dir, d);
        cr_assert_eq(mkdir(p, 0755), 0);
        free(p);
        for (f = 0; f < PER_DIR; f++) {
            p = xstrdupf("%s/d%02u/f%04u.txt", dir, d, f);
            write_file(p, "Ёж\n", 5);
            free(p);
            ref_add(&want, JOBQ_LETTERS_UTF8, "Ёж\n", 5);
        }
    }
    cli_run(&c, "-j", "2", "-f", "json", dir, NULL);
    cr_assert_eq(c.status, 0, "%s", c.err);
    json_parse(c.out, c.out_len, &root);
    cr_assert_eq(jv_num(&root, "files"), DIRS * PER_DIR);
    check_letters(jv_get(&root, "letters"), &want, JOBQ_LETTERS_YO_SEPARATE);
    jv_free(&root);
    cli_free(&c);
    cr_assert_eq(getrusage(RUSAGE_CHILDREN, &ru), 0);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    /* Nothing is kept per counted file without --per-file; the walk holds one directory's
     * names at a time. 64 MiB is generous for 20,000 files (sanitizer builds skip this). */
    cr_assert_lt(ru.ru_maxrss, 64 * 1024, "max RSS %ld KiB", ru.ru_maxrss);
#endif
    /* One thread per file, capped at 256 alive: one directory (thread start-up is slow under
     * the sanitizers, and the cap is reached either way). */
    p = xstrdupf("%s/d00", dir);
    cli_run(&c, "--mode", "thread-per-file", "-f", "json", p, NULL);
    cr_assert_eq(c.status, 0, "%s", c.err);
    json_parse(c.out, c.out_len, &root);
    cr_assert_eq(jv_num(&root, "files"), PER_DIR);
    jv_free(&root);
    cli_free(&c);
    free(p);
    remove_tree(dir);
}

Test(letters_cli, deep_tree, .timeout = 60)
{
    enum { DEPTH = 200 };
    char *dir = make_tmpdir(), *p, *q;
    unsigned i;
    cli c;
    jv root;
    jobq_letters_counts want;

    memset(&want, 0, sizeof want);
    p = strdup(dir);
    for (i = 0; i < DEPTH; i++) {
        q = xstrdupf("%s/d", p);
        free(p);
        p = q;
        cr_assert_eq(mkdir(p, 0755), 0, "mkdir depth %u: %s", i, strerror(errno));
    }
    q = xstrdupf("%s/bottom.txt", p);
    write_file(q, sample, strlen(sample));
    ref_add(&want, JOBQ_LETTERS_UTF8, sample, strlen(sample));
    free(q);
    free(p);
    cli_run(&c, "-f", "json", dir, NULL);
    cr_assert_eq(c.status, 0, "%s", c.err);
    json_parse(c.out, c.out_len, &root);
    cr_assert_eq(jv_num(&root, "files"), 1);
    check_letters(jv_get(&root, "letters"), &want, JOBQ_LETTERS_YO_SEPARATE);
    jv_free(&root);
    cli_free(&c);
    remove_tree(dir);
}

/* A worker waits at the hook; the test deletes or truncates the file, then lets it go on. */
static void
run_with_hook(const char *stage, int truncate_it, const char *want_msg)
{
    char *dir = make_tmpdir(), *target, *other, *hook, *env, *ready, *go, *buf;
    const char *args[8];
    struct timespec ts = {0, 10 * 1000 * 1000};
    size_t n;
    int i, fd;
    cli c;
    jv root;

    target = xstrdupf("%s/target.txt", dir);
    other = xstrdupf("%s/other.txt", dir);
    hook = xstrdupf("%s/hook", dir);
    ready = xstrdupf("%s.ready", hook);
    go = xstrdupf("%s.go", hook);
    env = xstrdupf(HOOK_ENV "%s:%s", stage, hook);
    buf = repeat(sample, strlen(sample), 512 * 1024, &n);
    write_file(target, buf, n);
    write_file(other, sample, strlen(sample));
    /* Sequential mode opens the paths in command-line order: target first. */
    args[0] = "--mode";
    args[1] = "sequential";
    args[2] = "-f";
    args[3] = "json";
    args[4] = target;
    args[5] = other;
    args[6] = NULL;
    cli_spawn(&c, args, env);
    for (i = 0; i < 2000 && access(ready, F_OK) != 0; i++)
        (void)nanosleep(&ts, NULL);
    cr_assert_eq(access(ready, F_OK), 0, "the hook was never reached");
    if (truncate_it)
        cr_assert_eq(truncate(target, 100), 0);
    else
        cr_assert_eq(unlink(target), 0);
    fd = open(go, O_WRONLY | O_CREAT, 0644);
    cr_assert(fd >= 0);
    (void)close(fd);
    cli_wait(&c);
    cr_assert_eq(c.status, 1, "%s", c.err);
    cr_assert(strstr(c.err, target) != NULL, "%s", c.err);
    cr_assert(strstr(c.err, want_msg) != NULL, "%s", c.err);
    json_parse(c.out, c.out_len, &root);
    cr_assert_eq(jv_num(&root, "files"), 1, "the other file is still counted");
    cr_assert(has_error_for(&root, target));
    jv_free(&root);
    cli_free(&c);
    free(buf);
    free(target);
    free(other);
    free(hook);
    free(ready);
    free(go);
    free(env);
    remove_tree(dir);
}

Test(letters_cli, file_vanishing_before_open, .timeout = 60)
{
    run_with_hook("open", 0, "vanished");
}

Test(letters_cli, file_shrinking_while_read, .timeout = 60)
{
    run_with_hook("read", 1, "shrank");
}

/* The installed tool has no test hook: the variable changes nothing. */
Test(letters_cli, shipped_tool_ignores_the_test_hook, .timeout = 60)
{
    char *dir = make_tmpdir(), *file = xstrdupf("%s/t.txt", dir), *hook = xstrdupf("%s/h", dir);
    char *ready = xstrdupf("%s.ready", hook), cmd[3 * PATH_MAX];
    int st;

    write_file(file, "Да", 4);
    (void)snprintf(cmd, sizeof cmd, HOOK_ENV "'open:%s' '%s' -q '%s' >/dev/null", hook, exe(),
                   file);
    st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    cr_assert_neq(access(ready, F_OK), 0, "the shipped tool ran the test hook");
    free(ready);
    free(hook);
    free(file);
    remove_tree(dir);
}

Test(letters_cli, formats_yo_and_exclude, .timeout = 60)
{
    char *dir = make_tmpdir(), *p, *line;
    jobq_letters_counts want, w;
    unsigned rows = 0;
    cli c;
    jv root;

    memset(&want, 0, sizeof want);
    p = xstrdupf("%s/text.txt", dir);
    write_file(p, sample, strlen(sample));
    ref_add(&want, JOBQ_LETTERS_UTF8, sample, strlen(sample));
    free(p);
    p = xstrdupf("%s/text.dat", dir);
    write_file(p, "Щука", 8);
    free(p);

    /* --exclude skips matching names found in directories. */
    cli_run(&c, "--exclude", "*.dat", "-f", "json", dir, NULL);
    cr_assert_eq(c.status, 0, "%s", c.err);
    json_parse(c.out, c.out_len, &root);
    cr_assert_eq(jv_num(&root, "files"), 1);
    check_letters(jv_get(&root, "letters"), &want, JOBQ_LETTERS_YO_SEPARATE);
    jv_free(&root);
    cli_free(&c);

    w = want;
    apply_yo(&w, JOBQ_LETTERS_YO_MERGE);
    cli_run(&c, "-x", "*.dat", "--yo", "merge", "-f", "json", dir, NULL);
    json_parse(c.out, c.out_len, &root);
    check_letters(jv_get(&root, "letters"), &w, JOBQ_LETTERS_YO_MERGE);
    jv_free(&root);
    cli_free(&c);

    w = want;
    apply_yo(&w, JOBQ_LETTERS_YO_IGNORE);
    cli_run(&c, "-x", "*.dat", "--yo", "ignore", "-f", "json", dir, NULL);
    json_parse(c.out, c.out_len, &root);
    check_letters(jv_get(&root, "letters"), &w, JOBQ_LETTERS_YO_IGNORE); /* 32 keys */
    cr_assert_eq(jv_num(&root, "total"), jobq_letters_total(&w));
    jv_free(&root);
    cli_free(&c);

    cli_run(&c, "-x", "*.dat", "-f", "csv", "--sort", "count", dir, NULL);
    cr_assert_eq(c.status, 0);
    cr_assert_eq(strncmp(c.out, "letter,count,percent\n", 21), 0, "%s", c.out);
    for (line = strchr(c.out, '\n'); line != NULL && line[1] != '\0';
         line = strchr(line + 1, '\n'))
        rows++;
    cr_assert_eq(rows, JOBQ_LETTERS_COUNT, "%s", c.out);
    /* Sorted by count: the first row is the most frequent letter. */
    {
        unsigned i, best = 0;
        char *row;

        for (i = 1; i < JOBQ_LETTERS_COUNT; i++) {
            if (want.n[i] > want.n[best])
                best = i;
        }
        row = xstrdupf("\n%s,%llu,", jobq_letters_name(best), (unsigned long long)want.n[best]);
        cr_assert_eq(strstr(c.out, row), strchr(c.out, '\n'), "%s", c.out);
        free(row);
    }
    cli_free(&c);

    cli_run(&c, "-x", "*.dat", dir, NULL);
    cr_assert_eq(c.status, 0);
    p = xstrdupf("total  %14llu", (unsigned long long)jobq_letters_total(&want));
    cr_assert(strstr(c.out, p) != NULL, "%s", c.out);
    free(p);
    cli_free(&c);
    remove_tree(dir);
}

/* --- the shared corpus: 46 texts with independent reference counts ----------------------- */

Test(letters_cli, corpus_directory_matches_expected_json, .timeout = 300)
{
    static const char *const modes[] = {"pool", "sequential", "chunks", "queues",
                                        "thread-per-file"};
    const char *corpus = getenv("JOBQ_CORPUS_DIR");
    char *exp_path, *ru, *text, *first = NULL;
    size_t len, i, k;
    jv expected, root;
    const jv *dir, *letters;
    jobq_letters_counts want;
    struct stat st;
    cli c;

    if (corpus == NULL || stat(corpus, &st) != 0)
        cr_skip_test("corpus not found (%s): ../shared/corpus is absent in this checkout",
                     corpus ? corpus : "JOBQ_CORPUS_DIR unset");
    exp_path = xstrdupf("%s/expected.json", corpus);
    ru = xstrdupf("%s/ru", corpus);
    text = read_file(exp_path, &len);
    json_parse(text, len, &expected);
    dir = jv_get(&expected, "dir");
    cr_assert(dir != NULL);
    letters = jv_get(dir, "letters");
    cr_assert(letters != NULL);
    memset(&want, 0, sizeof want);
    for (k = 0; k < letters->n; k++) {
        for (i = 0; i < JOBQ_LETTERS_COUNT; i++) {
            if (strcmp(letters->keys[k], jobq_letters_name((unsigned)i)) == 0)
                want.n[i] = strtoull(letters->item[k].str, NULL, 10);
        }
    }
    for (i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        cli_run(&c, "-j", "2", "--mode", modes[i], "-f", "json", ru, NULL);
        cr_assert_eq(c.status, 0, "%s: %s", modes[i], c.err);
        json_parse(c.out, c.out_len, &root);
        cr_assert_eq(jv_num(&root, "files"), jv_num(dir, "files"));
        cr_assert_eq(jv_num(&root, "total"), jv_num(dir, "total"));
        check_letters(jv_get(&root, "letters"), &want, JOBQ_LETTERS_YO_SEPARATE);
        jv_free(&root);
        if (first == NULL)
            first = strdup(c.out);
        else
            cr_assert_str_eq(c.out, first, "mode %s", modes[i]);
        cli_free(&c);
    }
    free(first);
    jv_free(&expected);
    free(text);
    free(exp_path);
    free(ru);
}
