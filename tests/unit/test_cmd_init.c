/* SPDX-License-Identifier: MIT */
/*
 * Tests for `ferry init` (core/src/cmd_init.c): the starter deployment it
 * writes (config, env file, systemd unit, copies of the shipped mappings and
 * lua/), that the config loads once the secrets it names are set, that a
 * second run refuses to overwrite without --force and writes nothing, and
 * usage errors. Runs in-process with stdout and stderr captured to files.
 * The connectors come from FERRY_PLUGIN_DIR (the build's plugins, set by
 * CTest) and the shipped files from FERRY_SOURCE_DIR.
 */
/* cmocka 1.1.5 needs these four first, in this order, so keep the formatter off them. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"

struct fixture {
    char tmp[64];   /* scratch root, removed in teardown */
    char dir[128];  /* what `ferry init` is pointed at */
    char path[512]; /* scratch for path building */
    char out[8192];
    char errout[8192];
};

static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                    char child[1024];
                    snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
                    remove_tree(child);
                }
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f) {
        return -1;
    }
    snprintf(f->tmp, sizeof(f->tmp), "/tmp/ferry-test-init-XXXXXX");
    if (!mkdtemp(f->tmp)) {
        free(f);
        return -1;
    }
    /* A directory init has to create, one level below an existing one. */
    snprintf(f->dir, sizeof(f->dir), "%s/etc-ferry", f->tmp);
    if (!getenv("FERRY_SOURCE_DIR")) {
        setenv("FERRY_SOURCE_DIR", FERRY_SOURCE_DIR, 1);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    remove_tree(f->tmp);
    free(f);
    return 0;
}

static const char *in_dir(struct fixture *f, const char *rel)
{
    int n = snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, rel);
    assert_true(n > 0 && (size_t)n < sizeof(f->path));
    return f->path;
}

/* Whole file as a new string, or NULL when it cannot be read. */
static char *read_file(const char *path)
{
    FILE *in = fopen(path, "rb");
    if (!in) {
        return NULL;
    }
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, in) : 0;
    fclose(in);
    if (buf) {
        buf[n] = '\0';
    }
    return buf;
}

static void slurp(const char *path, char *buf, size_t size)
{
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    size_t n = fread(buf, 1, size - 1, in);
    buf[n] = '\0';
    fclose(in);
    unlink(path);
}

/* Runs `ferry init ARGS...` (NULL-terminated) with its output captured into f. */
static int run_init(struct fixture *f, ...)
{
    char *argv[16];
    int argc = 0;
    va_list ap;
    argv[argc++] = (char *)"init";
    va_start(ap, f);
    for (char *a = va_arg(ap, char *); a && argc < 15; a = va_arg(ap, char *)) {
        argv[argc++] = a;
    }
    va_end(ap);
    argv[argc] = NULL;

    char outp[160], errp[160];
    snprintf(outp, sizeof(outp), "%s/stdout.txt", f->tmp);
    snprintf(errp, sizeof(errp), "%s/stderr.txt", f->tmp);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    int fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int fe = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved_out >= 0 && saved_err >= 0 && fo >= 0 && fe >= 0);
    dup2(fo, 1);
    dup2(fe, 2);
    int rc = ferry_cmd_init(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(fo);
    close(fe);
    close(saved_out);
    close(saved_err);
    slurp(outp, f->out, sizeof(f->out));
    slurp(errp, f->errout, sizeof(f->errout));
    return rc;
}

static void assert_same_file(const char *a, const char *b)
{
    char *x = read_file(a);
    char *y = read_file(b);
    assert_non_null(x);
    assert_non_null(y);
    assert_string_equal(x, y);
    free(x);
    free(y);
}

static size_t count_plugins(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 3 && strcmp(e->d_name + len - 3, ".so") == 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

/*
 * Sets every NAME= line of ferry.env (commented ones too) to a value and
 * returns how many uncommented ones there were.
 */
static size_t set_env_from(const char *env_text, int unset)
{
    size_t required = 0;
    const char *line = env_text;
    while (line && *line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *name = line[0] == '#' ? line + 1 : line;
        const char *eq = memchr(name, '=', len - (size_t)(name - line));
        if (eq && strncmp(name, "FERRY_", 6) == 0) {
            char buf[128];
            snprintf(buf, sizeof(buf), "%.*s", (int)(eq - name), name);
            if (unset) {
                unsetenv(buf);
            } else {
                /* Distinct values: the loader counts equal secrets once. */
                setenv(buf, buf, 1);
            }
            if (line[0] != '#') {
                required++;
            }
        }
        line = end ? end + 1 : NULL;
    }
    return required;
}

static void test_cmd_init_help(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(run_init(f, "--help", NULL), FERRY_EXIT_OK);
    assert_non_null(strstr(f->out, "usage: ferry init"));
    assert_non_null(strstr(f->out, "--force"));
    assert_string_equal(f->errout, "");
}

static void test_cmd_init_usage_errors(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    assert_int_equal(run_init(f, NULL), FERRY_EXIT_USAGE);
    assert_non_null(strstr(f->errout, "DIR is required"));
    assert_int_equal(run_init(f, "--bogus", f->dir, NULL), FERRY_EXIT_USAGE);
    assert_non_null(strstr(f->errout, "--bogus"));
    assert_int_equal(run_init(f, f->dir, "second-dir", NULL), FERRY_EXIT_USAGE);
    assert_int_not_equal(stat(f->dir, &st), 0);
}

static void test_cmd_init_writes_a_deployment_that_loads(void **state)
{
    struct fixture *f = *state;
    const char *plugin_dir = getenv("FERRY_PLUGIN_DIR");
    struct ferry_config *cfg = NULL;
    struct ferry_err err = {0};
    struct stat st;
    char src[512], cfg_path[512];

    /* CTest sets it; without connectors the config would have no sections to check. */
    assert_non_null(plugin_dir);
    assert_int_equal(run_init(f, f->dir, NULL), FERRY_EXIT_OK);
    assert_non_null(strstr(f->out, "ferry check -c"));

    /* The shipped files are copied byte for byte. */
    snprintf(src, sizeof(src), "%s/mappings/customer_to_contact/mapping.lua",
             getenv("FERRY_SOURCE_DIR"));
    assert_same_file(in_dir(f, "mappings/customer_to_contact/mapping.lua"), src);
    snprintf(src, sizeof(src), "%s/mappings/customer_to_contact/fixtures/full_customer.in.json",
             getenv("FERRY_SOURCE_DIR"));
    assert_same_file(in_dir(f, "mappings/customer_to_contact/fixtures/full_customer.in.json"), src);
    snprintf(src, sizeof(src), "%s/lua/ferry/map.lua", getenv("FERRY_SOURCE_DIR"));
    assert_same_file(in_dir(f, "lua/ferry/map.lua"), src);

    /* Secrets file: only its owner may read it. */
    assert_int_equal(stat(in_dir(f, "ferry.env"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *env_text = read_file(in_dir(f, "ferry.env"));
    assert_non_null(env_text);

    /* The unit starts this deployment's config as the ferry user. */
    char *unit = read_file(in_dir(f, "ferry.service"));
    assert_non_null(unit);
    snprintf(src, sizeof(src), "/ferry run -c %s/ferry.lua\n", f->dir);
    assert_non_null(strstr(unit, src));
    snprintf(src, sizeof(src), "EnvironmentFile=%s/ferry.env\n", f->dir);
    assert_non_null(strstr(unit, src));
    assert_non_null(strstr(unit, "\nUser=ferry\n"));
    assert_non_null(strstr(unit, "\nReadWritePaths=/var/lib/ferry\n"));
    assert_non_null(strstr(unit, "\nExecReload=/bin/kill -HUP $MAINPID\n"));
    free(unit);

    /* Before the secrets are set the config must not load (env() refuses empty values). */
    snprintf(cfg_path, sizeof(cfg_path), "%s/ferry.lua", f->dir);
    set_env_from(env_text, 1);
    size_t nplugins = count_plugins(plugin_dir);
    if (nplugins > 0) {
        assert_int_not_equal(ferry_config_load(&cfg, cfg_path, &err), 0);
        assert_non_null(strstr(err.msg, "env(\"FERRY_"));
    }

    size_t required = set_env_from(env_text, 0);
    int rc = ferry_config_load(&cfg, cfg_path, &err);
    if (rc != 0) {
        fail_msg("config written by ferry init does not load: %s", err.msg);
    }
    assert_int_equal(cfg->nconnectors, nplugins);
    assert_int_equal(cfg->nsecrets, required);
    assert_string_equal(cfg->mapping_dir, in_dir(f, "mappings"));
    assert_string_equal(cfg->lua_dir, in_dir(f, "lua"));
    assert_string_equal(cfg->state_path, "/var/lib/ferry/ferry.db");
    /* The health and metrics endpoints are on for a deployment, on loopback. */
    assert_int_equal(cfg->admin_port, 9464);
    assert_string_equal(cfg->admin_address, "127.0.0.1");
    assert_true(cfg->mapping_watch);
    assert_true(cfg->nmappings >= 1);
    for (size_t i = 0; i < cfg->nmappings; i++) {
        snprintf(src, sizeof(src), "mappings/%s/mapping.lua", cfg->mappings[i]);
        assert_int_equal(stat(in_dir(f, src), &st), 0);
    }
    ferry_config_free(cfg);

    /* And the connector sections pass each plugin's own field checks. */
    char *argv[] = {(char *)"plugins", (char *)"-c", cfg_path, NULL};
    fflush(stdout);
    int saved_out = dup(1);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    rc = ferry_cmd_plugins(3, argv);
    fflush(stdout);
    dup2(saved_out, 1);
    close(devnull);
    close(saved_out);
    assert_int_equal(rc, FERRY_EXIT_OK);

    set_env_from(env_text, 1);
    free(env_text);
}

static void test_cmd_init_refuses_to_overwrite(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(run_init(f, f->dir, NULL), FERRY_EXIT_OK);

    /* An operator's edits and a loosened mode, which a refused run must not touch. */
    FILE *cfg = fopen(in_dir(f, "ferry.lua"), "w");
    assert_non_null(cfg);
    fputs("-- edited by the operator\nreturn {}\n", cfg);
    fclose(cfg);
    remove_tree(in_dir(f, "lua"));
    assert_int_equal(chmod(in_dir(f, "ferry.env"), 0644), 0);

    assert_int_equal(run_init(f, f->dir, NULL), FERRY_EXIT_FAILURE);
    assert_non_null(strstr(f->errout, "already exists"));
    assert_non_null(strstr(f->errout, "--force"));
    assert_string_equal(f->out, "");
    char *text = read_file(in_dir(f, "ferry.lua"));
    assert_non_null(text);
    assert_string_equal(text, "-- edited by the operator\nreturn {}\n");
    free(text);
    /* Nothing at all was written: not even the missing lua/ came back. */
    struct stat st;
    assert_int_not_equal(stat(in_dir(f, "lua"), &st), 0);

    assert_int_equal(run_init(f, "--force", f->dir, NULL), FERRY_EXIT_OK);
    text = read_file(in_dir(f, "ferry.lua"));
    assert_non_null(text);
    assert_null(strstr(text, "edited by the operator"));
    assert_non_null(strstr(text, "written by 'ferry init'"));
    free(text);
    assert_int_equal(stat(in_dir(f, "lua/ferry/map.lua"), &st), 0);
    assert_int_equal(stat(in_dir(f, "ferry.env"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_cmd_init_state_elsewhere(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(run_init(f, "--state", "/srv/ferry/state.db", f->dir, NULL), FERRY_EXIT_OK);
    char *unit = read_file(in_dir(f, "ferry.service"));
    char *cfg = read_file(in_dir(f, "ferry.lua"));
    assert_non_null(unit);
    assert_non_null(cfg);
    assert_non_null(strstr(unit, "\nReadWritePaths=/srv/ferry\n"));
    /* systemd only creates /var/lib/<name> state directories. */
    assert_null(strstr(unit, "StateDirectory="));
    assert_non_null(strstr(cfg, "state = { path = \"/srv/ferry/state.db\" }"));
    free(unit);
    free(cfg);
}

static void test_cmd_init_without_shipped_files(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    char *saved = strdup(getenv("FERRY_SOURCE_DIR"));
    assert_non_null(saved);
    setenv("FERRY_SOURCE_DIR", "/nonexistent/ferry-source", 1);
    int rc = run_init(f, f->dir, NULL);
    setenv("FERRY_SOURCE_DIR", saved, 1);
    free(saved);
    assert_int_equal(rc, FERRY_EXIT_FAILURE);
    assert_non_null(strstr(f->errout, "/nonexistent/ferry-source/mappings"));
    assert_int_not_equal(stat(f->dir, &st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cmd_init_help, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cmd_init_usage_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cmd_init_writes_a_deployment_that_loads, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cmd_init_refuses_to_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cmd_init_state_elsewhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cmd_init_without_shipped_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
