/* SPDX-License-Identifier: MIT */
/*
 * `ferry init DIR`: lay out a starter deployment an operator can edit and
 * start. The connector sections of the config are written from each
 * installed plugin's own declared fields (name, type, default, required,
 * description), so this command knows no connector by name and stays right
 * when a plugin gains a field. Secret fields become env("FERRY_<INSTANCE>_
 * <FIELD>") and are listed in ferry.env, the file the systemd unit reads.
 *
 * Every destination is checked before anything is written, so a refused run
 * (an existing file without --force) leaves DIR exactly as it was.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "http.h"
#include "log.h"
#include "plugin_loader.h"
#include "util.h"

#ifndef FERRY_DEFAULT_PLUGIN_DIR
#define FERRY_DEFAULT_PLUGIN_DIR "/usr/local/lib/ferry/plugins"
#endif
#ifndef FERRY_DEFAULT_SHARE_DIR
#define FERRY_DEFAULT_SHARE_DIR "/usr/local/share/ferry"
#endif
#ifndef FERRY_INIT_BINDIR
#define FERRY_INIT_BINDIR "/usr/local/bin"
#endif
#ifndef FERRY_VERSION
#define FERRY_VERSION "0"
#endif

#define DEFAULT_STATE_PATH "/var/lib/ferry/ferry.db"
#define PLUGIN_SUFFIX      ".so"

/* One thing to create: a directory, a copy of a shipped file, or generated text. */
struct init_item {
    char *dst;
    char *src;  /* file to copy; NULL for a directory or generated text */
    char *text; /* generated content; NULL otherwise */
    mode_t mode;
    bool dir;
};

struct init_plan {
    struct init_item *items;
    size_t n;
    size_t cap;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: ferry init [--force] [--state PATH] DIR\n\n"
               "Write a starter deployment into DIR (created when missing):\n"
               "  DIR/ferry.lua      commented configuration; one section per installed\n"
               "                     connector, written from the connector's own fields\n"
               "  DIR/ferry.env      the secrets the configuration reads with env(), to\n"
               "                     fill in (mode 0600; the systemd unit loads it)\n"
               "  DIR/mappings/      the shipped mappings, with their fixtures\n"
               "  DIR/lua/           the helpers mappings require\n"
               "  DIR/ferry.service  a systemd unit running 'ferry run -c DIR/ferry.lua'\n\n"
               "Connectors are read from $FERRY_PLUGIN_DIR, else " FERRY_DEFAULT_PLUGIN_DIR ".\n"
               "Mappings and lua/ are copied from $FERRY_SOURCE_DIR (a source tree) when\n"
               "set, else from " FERRY_DEFAULT_SHARE_DIR ".\n"
               "Nothing is written when any of these files already exists, unless --force.\n\n"
               "  --force        overwrite existing files\n"
               "  --state PATH   the state database (default " DEFAULT_STATE_PATH ")\n"
               "  -h, --help     this text\n");
}

static int plan_add(struct init_plan *plan, const char *dst, const char *src, char *text,
                    mode_t mode, bool dir)
{
    if (plan->n == plan->cap) {
        size_t cap = plan->cap ? plan->cap * 2 : 32;
        struct init_item *v = realloc(plan->items, cap * sizeof(*v));
        if (!v) {
            free(text);
            return FERRY_ENOMEM;
        }
        plan->items = v;
        plan->cap = cap;
    }
    struct init_item *it = &plan->items[plan->n];
    it->dst = strdup(dst);
    it->src = src ? strdup(src) : NULL;
    /* The plan owns `text` from here on, even on failure. */
    it->text = text;
    it->mode = mode;
    it->dir = dir;
    plan->n++;
    if (!it->dst || (src && !it->src)) {
        return FERRY_ENOMEM;
    }
    return 0;
}

static void plan_free(struct init_plan *plan)
{
    for (size_t i = 0; i < plan->n; i++) {
        free(plan->items[i].dst);
        free(plan->items[i].src);
        free(plan->items[i].text);
    }
    free(plan->items);
}

/* Skip dot files: editor droppings and VCS metadata are not part of what ships. */
static int not_hidden(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

/* Adds src's tree below dst to the plan, in name order (a stable, reviewable result). */
static int plan_tree(struct init_plan *plan, const char *src, const char *dst,
                     struct ferry_err *err)
{
    struct dirent **names = NULL;
    int n = scandir(src, &names, not_hidden, alphasort);
    int rc = 0;

    if (n < 0) {
        return ferry_err_set(err, -errno, "%s: %s", src, strerror(errno));
    }
    rc = plan_add(plan, dst, NULL, NULL, 0755, true);
    for (int i = 0; i < n && rc == 0; i++) {
        char *s = ferry_path_join(src, names[i]->d_name);
        char *d = ferry_path_join(dst, names[i]->d_name);
        struct stat st;
        if (!s || !d) {
            rc = FERRY_ENOMEM;
        } else if (stat(s, &st) != 0) {
            rc = ferry_err_set(err, -errno, "%s: %s", s, strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            rc = plan_tree(plan, s, d, err);
        } else if (S_ISREG(st.st_mode)) {
            rc = plan_add(plan, d, s, NULL, 0644, false);
        }
        free(s);
        free(d);
    }
    for (int i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    return rc;
}

/* <dir>/<name> with generated content; takes ownership of text, even on failure. */
static int plan_text(struct init_plan *plan, const char *dir, const char *name, char *text,
                     mode_t mode)
{
    char *dst = ferry_path_join(dir, name);
    if (!dst) {
        free(text);
        return FERRY_ENOMEM;
    }
    int rc = plan_add(plan, dst, NULL, text, mode, false);
    free(dst);
    return rc;
}

/* <share>/<name>/ copied to <dir>/<name>/. */
static int plan_subtree(struct init_plan *plan, const char *share, const char *dir,
                        const char *name, struct ferry_err *err)
{
    char *src = ferry_path_join(share, name);
    char *dst = ferry_path_join(dir, name);
    int rc = src && dst ? plan_tree(plan, src, dst, err) : FERRY_ENOMEM;
    free(src);
    free(dst);
    return rc;
}

/* Lua string literal for s: quotes, backslashes and control bytes escaped. */
static void put_lua_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            fprintf(f, "\\%c", *p);
        } else if (*p < 0x20 || *p == 0x7f) {
            fprintf(f, "\\%03u", *p);
        } else {
            fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* One line of text for a comment: a description must not end the comment early. */
static void put_comment_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        fputc(*s == '\n' || *s == '\r' ? ' ' : *s, f);
    }
}

/* FERRY_<INSTANCE>_<FIELD>, upper case, anything but letters and digits as '_'. */
static void env_name(char *buf, size_t len, const char *instance, const char *field)
{
    int n = snprintf(buf, len, "FERRY_%s_%s", instance, field);
    if (n < 0) {
        buf[0] = '\0';
        return;
    }
    for (char *p = buf; *p; p++) {
        if (*p >= 'a' && *p <= 'z') {
            *p = (char)(*p - 'a' + 'A');
        } else if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) {
            *p = '_';
        }
    }
}

/* A field's value as Lua text: its default, or a placeholder the operator must replace. */
static void put_field_value(FILE *f, const struct ferry_config_field *fld, const char *env)
{
    switch (fld->type) {
    case FERRY_CFG_SECRET:
        fprintf(f, "env(\"%s\")", env);
        break;
    case FERRY_CFG_INT:
        fputs(fld->def ? fld->def : "0", f);
        break;
    case FERRY_CFG_BOOL:
        fputs(fld->def ? fld->def : "false", f);
        break;
    case FERRY_CFG_TABLE:
        /* A JSON default is not Lua text; the description says what goes in. */
        fputs("{}", f);
        break;
    default:
        /* A required value must be edited; an optional one only shows its shape. */
        put_lua_string(f, fld->def ? fld->def : fld->required ? "CHANGE-ME" : "...");
        break;
    }
}

/* The connectors section for one plugin; secret names are appended to envf. */
static void put_connector(FILE *cfg, FILE *envf, const struct ferry_connector *c)
{
    fprintf(cfg, "    -- %s %s", c->name, c->version ? c->version : "");
    if (c->description) {
        fputs(": ", cfg);
        put_comment_text(cfg, c->description);
    }
    fprintf(cfg, "\n    %s = {\n", c->name);
    for (const struct ferry_config_field *fld = c->config; fld && fld->name; fld++) {
        char env[160];
        env_name(env, sizeof(env), c->name, fld->name);
        /* Optional fields stay commented: their defaults apply until someone decides otherwise. */
        fprintf(cfg, "      %s%s = ", fld->required ? "" : "-- ", fld->name);
        put_field_value(cfg, fld, env);
        fputs(",", cfg);
        if (fld->desc || fld->required) {
            fputs("  -- ", cfg);
            if (fld->required) {
                fputs(fld->type == FERRY_CFG_SECRET || fld->def ? "(required) "
                                                                : "(required, edit) ",
                      cfg);
            }
            put_comment_text(cfg, fld->desc);
            if (fld->type == FERRY_CFG_TABLE && fld->def) {
                fputs(" (default, as JSON: ", cfg);
                put_comment_text(cfg, fld->def);
                fputs(")", cfg);
            }
        }
        fputs("\n", cfg);
        if (fld->type == FERRY_CFG_SECRET) {
            fprintf(envf, "%s%s=\n", fld->required ? "" : "#", env);
        }
    }
    fputs("    },\n", cfg);
}

FERRY_PRINTF(3, 4)
static void cli_log(struct ferry_call *call, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ferry_log_writev(level, NULL, fmt, ap);
    va_end(ap);
}

/* Plugins are only asked to describe themselves here; none is opened. */
static int cli_http(struct ferry_call *call, const struct ferry_http_req *req,
                    struct ferry_http_resp *resp, struct ferry_err *err)
{
    return ferry_err_set(err, FERRY_EUNSUPPORTED, "no HTTP in ferry init");
}

static int64_t cli_now_ms(struct ferry_call *call)
{
    return ferry_now_ms();
}

static void **cli_worker_slot(struct ferry_call *call)
{
    return NULL;
}

static const char *cli_correlation_id(struct ferry_call *call)
{
    return "ferry-init";
}

static const struct ferry_host_api init_host = {
    .abi = FERRY_PLUGIN_ABI,
    .size = sizeof(struct ferry_host_api),
    .log = cli_log,
    .http = cli_http,
    .http_resp_free = ferry_http_resp_free,
    .http_header = ferry_http_resp_header,
    .now_ms = cli_now_ms,
    .worker_slot = cli_worker_slot,
    .correlation_id = cli_correlation_id,
};

static int only_plugins(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    size_t s = strlen(PLUGIN_SUFFIX);
    return e->d_name[0] != '.' && n > s && strcmp(e->d_name + n - s, PLUGIN_SUFFIX) == 0;
}

/* Every loadable connector in plugin_dir, as config sections and env lines. */
static void put_connectors(FILE *cfg, FILE *envf, const char *plugin_dir)
{
    struct dirent **names = NULL;
    int n = scandir(plugin_dir, &names, only_plugins, alphasort);
    int loaded = 0;

    for (int i = 0; i < n; i++) {
        char name[256];
        struct ferry_plugin *p = NULL;
        struct ferry_err err = {0};
        snprintf(name, sizeof(name), "%.*s",
                 (int)(strlen(names[i]->d_name) - strlen(PLUGIN_SUFFIX)), names[i]->d_name);
        if (ferry_plugin_load(&p, plugin_dir, name, &init_host, &err) < 0) {
            /* One broken file must not stop the others from being written. */
            fprintf(stderr, "ferry init: skipping %s: %s\n", names[i]->d_name, err.msg);
        } else {
            put_connector(cfg, envf, &p->conn);
            loaded++;
        }
        ferry_plugin_unload(p);
    }
    for (int i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    if (loaded == 0) {
        fprintf(cfg,
                "    -- No connector was found in %s when this file was written.\n"
                "    -- A section looks like:  <instance> = { plugin = \"<name>\", ... },\n"
                "    -- and 'ferry plugins -c THIS_FILE' checks it.\n",
                plugin_dir);
    }
}

static int has_mapping(const char *mappings_dir, const char *name)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s/mapping.lua", mappings_dir, name);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * Whether a shipped mapping starts enabled in a new config. A mapping that
 * needs settings first, or overlaps another, says so with a line
 * "-- ferry init: off" in its mapping.lua; it is then listed commented out.
 */
static bool starts_enabled(const char *mappings_dir, const char *name)
{
    char path[4096];
    char line[512];
    bool on = true;
    snprintf(path, sizeof(path), "%s/%s/mapping.lua", mappings_dir, name);
    FILE *f = fopen(path, "r");
    if (!f) {
        return false;
    }
    while (on && fgets(line, sizeof(line), f)) {
        on = strstr(line, "-- ferry init: off") == NULL;
    }
    fclose(f);
    return on;
}

/* Texts of ferry.lua and ferry.env; both new strings. */
static int build_config(const char *share, const char *plugin_dir, const char *state_path,
                        const char *dir, char **cfg_text, char **env_text)
{
    char *mappings_dir = ferry_path_join(share, "mappings");
    struct dirent **names = NULL;
    size_t cfg_len = 0, env_len = 0;
    FILE *cfg = open_memstream(cfg_text, &cfg_len);
    FILE *envf = open_memstream(env_text, &env_len);
    int n = -1;
    int rc = FERRY_ENOMEM;

    if (!mappings_dir || !cfg || !envf) {
        goto cleanup;
    }
    fprintf(envf,
            "# Secrets for %s/ferry.lua, one NAME=value per line (no quotes, no export).\n"
            "# systemd reads this file as root (EnvironmentFile=) before ferry starts;\n"
            "# keep it mode 0600. An empty value counts as unset: ferry refuses to start.\n",
            dir);
    fprintf(cfg, "-- ferry configuration, written by 'ferry init' (ferry " FERRY_VERSION ").\n"
                 "-- A Lua file that returns one table. Secrets never live in this file:\n"
                 "-- env(\"NAME\") reads one from the environment (ferry.env next to this file,\n"
                 "-- loaded by the systemd unit), file(\"PATH\") from a file only ferry can read.\n"
                 "-- Relative paths are resolved against this file's directory.\n"
                 "-- Check it with:  ferry check -c ferry.lua   and   ferry plugins -c ferry.lua\n"
                 "return {\n"
                 "  -- The one SQLite file with the queue, links, cursors and audit trail.\n"
                 "  -- Its directory must be writable by the daemon (WAL files live beside it).\n"
                 "  state = { path = ");
    put_lua_string(cfg, state_path);
    fprintf(cfg,
            " },\n"
            "  workers = 4,                                -- jobs processed in parallel\n"
            "  log = { level = \"info\", format = \"json\" },  -- format \"text\" on a terminal\n\n"
            "  -- Connectors load from here; FERRY_PLUGIN_DIR overrides it.\n"
            "  -- plugins = { dir = ");
    put_lua_string(cfg, FERRY_DEFAULT_PLUGIN_DIR);
    fprintf(cfg, " },\n\n"
                 "  mappings = {\n"
                 "    dir = \"mappings\",        -- copied by ferry init; saved edits reload\n"
                 "    -- watch = false,          -- reload on SIGHUP only\n"
                 "    lua_path = \"lua\",        -- the helpers mappings require\n"
                 "    enabled = {");
    n = scandir(mappings_dir, &names, not_hidden, alphasort);
    for (int i = 0; i < n; i++) {
        if (has_mapping(mappings_dir, names[i]->d_name)) {
            bool on = starts_enabled(mappings_dir, names[i]->d_name);
            fprintf(cfg, "\n      %s", on ? "" : "-- ");
            put_lua_string(cfg, names[i]->d_name);
            fprintf(cfg, ",%s", on ? "" : "  -- read its mapping.lua before enabling it");
        }
    }
    fprintf(cfg, "\n    },\n"
                 "  },\n\n"
                 "  -- Webhook intake. Vendors call https://<public host>/webhooks/<instance>:\n"
                 "  -- put TLS in front (a reverse proxy) and keep this on loopback.\n"
                 "  webhooks = {\n"
                 "    address = \"127.0.0.1\",\n"
                 "    port = 8080,\n"
                 "    -- public_url = \"https://ferry.example.com\",  -- for 'ferry webhooks'\n"
                 "    -- tls = { cert = \"/etc/ferry/tls/fullchain.pem\",\n"
                 "    --         key = \"/etc/ferry/tls/privkey.pem\" },  -- TLS without a proxy\n"
                 "  },\n"
                 "  -- /healthz, /readyz and /metrics (Prometheus); keep it on loopback.\n"
                 "  admin = { address = \"127.0.0.1\", port = 9464 },\n"
                 "  -- Personal data in logs, audit rows, dead letters and explain output.\n"
                 "  -- privacy = { mask = { \"email\", \"street\" }, hash = { \"phone\" },\n"
                 "  --             emails = \"mask\", salt = env(\"FERRY_PRIVACY_SALT\") },\n"
                 "  -- How long audit rows and finished jobs are kept (default: forever).\n"
                 "  -- retention = { audit_days = 30, jobs_days = 14 },\n"
                 "  poll = { interval = 300 },  -- seconds between delta polls (webhook safety "
                 "net)\n"
                 "  retry = { max_attempts = 8, base_delay = 1, max_delay = 600 },\n"
                 "  http = { timeout = 30 },\n\n"
                 "  -- One section per connector instance; the key is the instance name\n"
                 "  -- the mappings use. Commented keys show their defaults.\n"
                 "  connectors = {\n");
    put_connectors(cfg, envf, plugin_dir);
    fprintf(cfg, "  },\n}\n");
    rc = 0;
cleanup:
    /* fclose finalises the memstream buffers; a failed write shows as ferror. */
    if (cfg && (ferror(cfg) || fclose(cfg) != 0)) {
        rc = FERRY_ENOMEM;
    }
    if (envf && (ferror(envf) || fclose(envf) != 0)) {
        rc = FERRY_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    free(mappings_dir);
    return rc;
}

/* The directory part of path (for the unit's ReadWritePaths); new string. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        return strdup(".");
    }
    return strndup(path, slash == path ? 1 : (size_t)(slash - path));
}

/*
 * The unit mirrors examples/systemd/ferry.service (whose test checks the same
 * keys), with this deployment's paths filled in.
 */
static char *build_unit(const char *dir, const char *state_path)
{
    char *text = NULL;
    size_t len = 0;
    char *state_dir = dir_of(state_path);
    FILE *f = open_memstream(&text, &len);

    if (!f || !state_dir) {
        if (f) {
            fclose(f);
        }
        free(text);
        free(state_dir);
        return NULL;
    }
    fprintf(f,
            "# ferry, written by 'ferry init'. Install with:\n"
            "#   cp %s/ferry.service /etc/systemd/system/ && systemctl daemon-reload\n"
            "#   systemctl enable --now ferry\n"
            "# It runs as the system user 'ferry' (create it first, see ferry(1)), which\n"
            "# must be able to read %s. ProtectHome and PrivateTmp hide /home\n"
            "# and /tmp from the daemon, so keep the deployment elsewhere (e.g. /etc/ferry).\n"
            "[Unit]\n"
            "Description=ferry integration engine\n"
            "Documentation=man:ferry(1)\n"
            "After=network-online.target\n"
            "Wants=network-online.target\n\n"
            "[Service]\n"
            "Type=simple\n"
            "User=ferry\n"
            "Group=ferry\n"
            "EnvironmentFile=%s/ferry.env\n"
            "ExecStart=" FERRY_INIT_BINDIR "/ferry run -c %s/ferry.lua\n"
            "# SIGHUP recompiles the mappings and swaps them in only if all compile.\n"
            "ExecReload=/bin/kill -HUP $MAINPID\n"
            "# SIGTERM stops intake and lets running jobs finish; pending jobs stay queued.\n"
            "KillSignal=SIGTERM\n"
            "TimeoutStopSec=120\n"
            "Restart=on-failure\n"
            "RestartSec=5\n"
            "%s"
            "ReadWritePaths=%s\n"
            "UMask=0077\n"
            "NoNewPrivileges=yes\n"
            "ProtectSystem=strict\n"
            "ProtectHome=yes\n"
            "PrivateTmp=yes\n"
            "PrivateDevices=yes\n"
            "ProtectKernelTunables=yes\n"
            "ProtectKernelModules=yes\n"
            "ProtectControlGroups=yes\n"
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n"
            "RestrictNamespaces=yes\n"
            "RestrictRealtime=yes\n"
            "LockPersonality=yes\n\n"
            "[Install]\n"
            "WantedBy=multi-user.target\n",
            dir, dir, dir, dir,
            strcmp(state_dir, "/var/lib/ferry") == 0 ? "StateDirectory=ferry\n" : "", state_dir);
    free(state_dir);
    if (ferror(f) || fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* A file the plan would overwrite, or NULL; a directory in a file's place is a conflict too. */
static const char *first_conflict(const struct init_plan *plan)
{
    for (size_t i = 0; i < plan->n; i++) {
        struct stat st;
        const struct init_item *it = &plan->items[i];
        if (lstat(it->dst, &st) != 0) {
            continue;
        }
        if (!it->dir || !S_ISDIR(st.st_mode)) {
            return it->dst;
        }
    }
    return NULL;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

static int copy_into(int out, const char *src, struct ferry_err *err)
{
    char buf[16384];
    int rc = 0;
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        return ferry_err_set(err, -errno, "%s: %s", src, strerror(errno));
    }
    for (;;) {
        ssize_t r = read(in, buf, sizeof(buf));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            rc = ferry_err_set(err, -errno, "%s: %s", src, strerror(errno));
            break;
        }
        if (r == 0) {
            break;
        }
        rc = write_all(out, buf, (size_t)r);
        if (rc < 0) {
            ferry_err_set(err, rc, "write: %s", strerror(-rc));
            break;
        }
    }
    close(in);
    return rc;
}

static int mkdir_p(const char *path, struct ferry_err *err)
{
    char buf[4096];
    int n = snprintf(buf, sizeof(buf), "%s", path);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        return ferry_err_set(err, FERRY_EINVAL, "%s: path too long", path);
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                return ferry_err_set(err, -errno, "%s: %s", buf, strerror(errno));
            }
            *p = c;
            if (c == '\0') {
                break;
            }
        }
    }
    return 0;
}

static int apply_item(const struct init_item *it, bool force, struct ferry_err *err)
{
    int rc = 0;
    int fd = -1;

    if (it->dir) {
        if (mkdir(it->dst, it->mode) != 0 && errno != EEXIST) {
            return ferry_err_set(err, -errno, "%s: %s", it->dst, strerror(errno));
        }
        return 0;
    }
    /* Without --force, O_EXCL also catches a file that appeared since the check. */
    fd = open(it->dst, O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL), it->mode);
    if (fd < 0) {
        return ferry_err_set(err, -errno, "%s: %s", it->dst, strerror(errno));
    }
    /* An overwritten ferry.env must not keep a looser mode than a fresh one. */
    if (fchmod(fd, it->mode) != 0) {
        rc = ferry_err_set(err, -errno, "%s: %s", it->dst, strerror(errno));
    } else if (it->src) {
        rc = copy_into(fd, it->src, err);
    } else if (it->text) {
        rc = write_all(fd, it->text, strlen(it->text));
        if (rc < 0) {
            ferry_err_set(err, rc, "%s: %s", it->dst, strerror(-rc));
        }
    }
    if (close(fd) != 0 && rc == 0) {
        rc = ferry_err_set(err, -errno, "%s: %s", it->dst, strerror(errno));
    }
    return rc;
}

/* DIR as an absolute path (the unit and messages need one); new string. */
static char *absolute_dir(const char *dir)
{
    char cwd[4096];
    if (dir[0] == '/') {
        return strdup(dir);
    }
    if (!getcwd(cwd, sizeof(cwd))) {
        return NULL;
    }
    return ferry_path_join(cwd, dir);
}

int ferry_cmd_init(int argc, char **argv)
{
    const char *dir_arg = NULL;
    const char *state_path = DEFAULT_STATE_PATH;
    bool force = false;
    int status = FERRY_EXIT_FAILURE;
    struct init_plan plan = {0};
    struct ferry_err err = {0};
    char *dir = NULL;
    char *cfg_text = NULL, *env_text = NULL, *unit_text = NULL;
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return FERRY_EXIT_OK;
        } else if (strcmp(argv[i], "--force") == 0) {
            force = true;
        } else if (strcmp(argv[i], "--state") == 0 && i + 1 < argc) {
            state_path = argv[++i];
        } else if (strncmp(argv[i], "--state=", 8) == 0) {
            state_path = argv[i] + 8;
        } else if (argv[i][0] != '-' && !dir_arg) {
            dir_arg = argv[i];
        } else {
            fprintf(stderr, "ferry init: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return FERRY_EXIT_USAGE;
        }
    }
    if (!dir_arg || !*dir_arg || !*state_path) {
        fprintf(stderr, "ferry init: DIR is required\n");
        usage(stderr);
        return FERRY_EXIT_USAGE;
    }

    const char *share = getenv("FERRY_SOURCE_DIR");
    if (!share || !*share) {
        share = FERRY_DEFAULT_SHARE_DIR;
    }
    const char *plugin_dir = getenv("FERRY_PLUGIN_DIR");
    if (!plugin_dir || !*plugin_dir) {
        plugin_dir = FERRY_DEFAULT_PLUGIN_DIR;
    }
    dir = absolute_dir(dir_arg);
    if (!dir) {
        rc = FERRY_ENOMEM;
        goto cleanup;
    }

    rc = build_config(share, plugin_dir, state_path, dir, &cfg_text, &env_text);
    if (rc < 0) {
        goto cleanup;
    }
    unit_text = build_unit(dir, state_path);
    if (!unit_text) {
        rc = FERRY_ENOMEM;
        goto cleanup;
    }
    rc = plan_add(&plan, dir, NULL, NULL, 0755, true);
    if (rc == 0) {
        rc = plan_text(&plan, dir, "ferry.lua", cfg_text, 0644);
        cfg_text = NULL;
    }
    if (rc == 0) {
        rc = plan_text(&plan, dir, "ferry.env", env_text, 0600);
        env_text = NULL;
    }
    if (rc == 0) {
        rc = plan_text(&plan, dir, "ferry.service", unit_text, 0644);
        unit_text = NULL;
    }
    if (rc == 0) {
        rc = plan_subtree(&plan, share, dir, "mappings", &err);
    }
    if (rc == 0) {
        rc = plan_subtree(&plan, share, dir, "lua", &err);
    }
    if (rc < 0) {
        if (rc != FERRY_ENOMEM) {
            fprintf(stderr,
                    "ferry init: shipped files not found: %s (set FERRY_SOURCE_DIR to a "
                    "source tree, or install ferry)\n",
                    err.msg);
            rc = 0;
        }
        goto cleanup;
    }

    if (!force) {
        const char *clash = first_conflict(&plan);
        if (clash) {
            fprintf(stderr,
                    "ferry init: %s already exists; nothing was written (--force overwrites)\n",
                    clash);
            goto cleanup;
        }
    }
    rc = mkdir_p(dir, &err);
    for (size_t i = 0; i < plan.n && rc == 0; i++) {
        rc = apply_item(&plan.items[i], force, &err);
    }
    if (rc < 0) {
        fprintf(stderr, "ferry init: %s\n", err.msg);
        rc = 0;
        goto cleanup;
    }
    printf("ferry init: wrote %s/ferry.lua, ferry.env, ferry.service, mappings/ and lua/\n"
           "next: fill in %s/ferry.env, edit ferry.lua, then run\n"
           "  ferry check -c %s/ferry.lua\n",
           dir, dir, dir);
    status = FERRY_EXIT_OK;
cleanup:
    if (rc == FERRY_ENOMEM) {
        fprintf(stderr, "ferry init: out of memory\n");
    }
    plan_free(&plan);
    free(cfg_text);
    free(env_text);
    free(unit_text);
    free(dir);
    return status;
}
