/* SPDX-License-Identifier: MIT */
/*
 * Connector loading and connector configuration checks (plugin_loader.h).
 * A plugin is untrusted until proven compatible: it is loaded only from the
 * configured directory, never when someone other than its owner could have
 * replaced it, and its descriptor is copied only as far as both sides know
 * it, so a plugin built against an older or newer header cannot make the
 * host read past its struct.
 */
#include "plugin_loader.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool valid_plugin_name(const char *s)
{
    if (!s || !*s) {
        return false;
    }
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

int ferry_plugin_load(struct ferry_plugin **out, const char *dir, const char *name,
                      const struct ferry_host_api *host, struct ferry_err *err)
{
    int rc = FERRY_ENOMEM;
    struct ferry_plugin *p = NULL;
    const struct ferry_connector *desc = NULL;
    ferry_connector_entry_fn entry = NULL;
    struct stat st;
    char *path = NULL;

    ferry_err_clear(err);
    if (!dir || !name || !host) {
        return ferry_err_set(err, FERRY_EINVAL, "plugin: missing directory, name or host");
    }
    size_t n = strlen(dir) + strlen(name) + 5;
    path = malloc(n);
    p = calloc(1, sizeof(*p));
    if (!path || !p) {
        ferry_err_set(err, rc, "plugin %s: out of memory", name);
        goto cleanup;
    }
    snprintf(path, n, "%s/%s.so", dir, name);
    /* The name becomes part of a path: no separators, no "..". */
    if (!valid_plugin_name(name)) {
        rc = ferry_err_set(err, FERRY_EPLUGIN,
                           "plugin %s: invalid name (letters, digits, '_' and '-' only)", path);
        goto cleanup;
    }
    if (stat(dir, &st) != 0) {
        rc = ferry_err_set(err, FERRY_EPLUGIN, "plugin %s: directory %s: %s", path, dir,
                           strerror(errno));
        goto cleanup;
    }
    /* Anyone could drop a replacement into a world-writable directory. */
    if (st.st_mode & S_IWOTH) {
        rc = ferry_err_set(err, FERRY_EPLUGIN, "plugin %s: directory %s is world-writable", path,
                           dir);
        goto cleanup;
    }
    if (stat(path, &st) != 0) {
        rc = ferry_err_set(err, FERRY_EPLUGIN, "plugin %s: %s", path,
                           errno == ENOENT ? "not found" : strerror(errno));
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = ferry_err_set(err, FERRY_EPLUGIN, "plugin %s: not a regular file", path);
        goto cleanup;
    }
    if (st.st_mode & S_IWOTH) {
        rc = ferry_err_set(err, FERRY_EPLUGIN, "plugin %s: file is world-writable", path);
        goto cleanup;
    }

    p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!p->dl) {
        const char *why = dlerror();
        rc = ferry_err_set(err, FERRY_EPLUGIN, "plugin %s: cannot load: %s", path,
                           why ? why : "unknown dlopen error");
        goto cleanup;
    }
    void *sym = dlsym(p->dl, FERRY_PLUGIN_ENTRY_SYMBOL);
    if (!sym) {
        rc = ferry_err_set(err, FERRY_EPLUGIN, "plugin %s: no entry symbol %s", path,
                           FERRY_PLUGIN_ENTRY_SYMBOL);
        goto cleanup;
    }
    /* POSIX guarantees dlsym's object pointer converts to a function pointer. */
    memcpy(&entry, &sym, sizeof(entry));
    int erc = entry(host, &desc);
    if (erc != 0 || !desc) {
        rc = ferry_err_set(err, FERRY_EPLUGIN, "plugin %s: entry failed: %s", path,
                           erc != 0 ? ferry_strerror(erc) : "no descriptor returned");
        goto cleanup;
    }
    if (desc->abi != FERRY_PLUGIN_ABI) {
        rc = ferry_err_set(err, FERRY_EABI, "plugin %s: built for ABI %u, this host has ABI %u",
                           path, (unsigned)desc->abi, (unsigned)FERRY_PLUGIN_ABI);
        goto cleanup;
    }
    if (desc->size < FERRY_CONNECTOR_MIN_SIZE) {
        rc = ferry_err_set(err, FERRY_EABI,
                           "plugin %s: descriptor size %u is below the minimum %zu for ABI %u",
                           path, (unsigned)desc->size, (size_t)FERRY_CONNECTOR_MIN_SIZE,
                           (unsigned)FERRY_PLUGIN_ABI);
        goto cleanup;
    }
    size_t copy = desc->size < sizeof(p->conn) ? desc->size : sizeof(p->conn);
    memcpy(&p->conn, desc, copy);
    /* The copy is what the host uses: its size is what was actually copied. */
    p->conn.size = (uint32_t)copy;
    if (!p->conn.name || strcmp(p->conn.name, name) != 0) {
        rc = ferry_err_set(err, FERRY_EPLUGIN, "plugin %s: calls itself \"%s\", expected \"%s\"",
                           path, p->conn.name ? p->conn.name : "(null)", name);
        goto cleanup;
    }
    if (!p->conn.open || !p->conn.close) {
        rc = ferry_err_set(err, FERRY_EPLUGIN, "plugin %s: mandatory callback %s is missing", path,
                           !p->conn.open ? "open" : "close");
        goto cleanup;
    }
    p->path = path;
    path = NULL;
    *out = p;
    p = NULL;
    rc = 0;
cleanup:
    ferry_plugin_unload(p);
    free(path);
    return rc;
}

void ferry_plugin_unload(struct ferry_plugin *p)
{
    if (!p) {
        return;
    }
    if (p->dl) {
        dlclose(p->dl);
    }
    free(p->path);
    free(p);
}

/* Name of a JSON value's type in config terms. */
static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (json_object_size(v) == 1 && json_object_get(v, "$secret")) {
            return "secret";
        }
        return "table";
    case JSON_ARRAY:
        return "table";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

/* The text inside a {"$secret": "..."} marker, or NULL. */
static const json_t *secret_inner(const json_t *v)
{
    if (!json_is_object(v) || json_object_size(v) != 1) {
        return NULL;
    }
    const json_t *s = json_object_get(v, "$secret");
    return json_is_string(s) ? s : NULL;
}

/* A deep copy with every secret marker replaced by its text; new reference. */
static json_t *unwrap_secrets(const json_t *v)
{
    const json_t *s = secret_inner(v);
    if (s) {
        return json_deep_copy(s);
    }
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *item;
        json_object_foreach((json_t *)v, k, item)
        {
            json_t *c = unwrap_secrets(item);
            if (!o || !c || json_object_set_new(o, k, c) != 0) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            json_t *c = unwrap_secrets(item);
            if (!a || !c || json_array_append_new(a, c) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    return json_deep_copy(v);
}

/* The default of field `f` as JSON; new reference, or NULL with err set. */
static json_t *parse_default(const struct ferry_plugin *p, const struct ferry_config_field *f,
                             struct ferry_err *err)
{
    json_t *v = NULL;
    char *end = NULL;

    switch (f->type) {
    case FERRY_CFG_STRING:
    case FERRY_CFG_SECRET:
        v = json_string(f->def);
        break;
    case FERRY_CFG_INT:
        errno = 0;
        long long n = strtoll(f->def, &end, 10);
        if (errno == 0 && end != f->def && *end == '\0') {
            v = json_integer(n);
        }
        break;
    case FERRY_CFG_BOOL:
        if (strcmp(f->def, "true") == 0 || strcmp(f->def, "1") == 0) {
            v = json_true();
        } else if (strcmp(f->def, "false") == 0 || strcmp(f->def, "0") == 0) {
            v = json_false();
        }
        break;
    case FERRY_CFG_TABLE:
        v = json_loads(f->def, JSON_DECODE_ANY, NULL);
        if (v && !json_is_object(v) && !json_is_array(v)) {
            json_decref(v);
            v = NULL;
        }
        break;
    default:
        break;
    }
    if (!v) {
        ferry_err_set(err, FERRY_EPLUGIN, "plugin %s: field %s: invalid default \"%s\"", p->path,
                      f->name, f->def);
    }
    return v;
}

/* Check `v` against field `f`; on success *out is the value open() receives. */
static int check_value(const struct ferry_config_field *f, const json_t *v, const char *where,
                       json_t **out, struct ferry_err *err)
{
    const char *expected = NULL;

    switch (f->type) {
    case FERRY_CFG_STRING:
        /* A plain setting may still come from env()/file(), e.g. a per-deployment host. */
        if (json_is_string(v) || secret_inner(v)) {
            *out = unwrap_secrets(v);
            return *out ? 0 : FERRY_ENOMEM;
        }
        expected = "string";
        break;
    case FERRY_CFG_INT:
        if (json_is_integer(v)) {
            *out = json_deep_copy(v);
            return *out ? 0 : FERRY_ENOMEM;
        }
        expected = "integer";
        break;
    case FERRY_CFG_BOOL:
        if (json_is_boolean(v)) {
            *out = json_deep_copy(v);
            return *out ? 0 : FERRY_ENOMEM;
        }
        expected = "boolean";
        break;
    case FERRY_CFG_SECRET:
        if (secret_inner(v)) {
            *out = unwrap_secrets(v);
            return *out ? 0 : FERRY_ENOMEM;
        }
        if (json_is_string(v)) {
            return ferry_err_set(err, FERRY_ECONFIG,
                                 "%s: is a secret; give it as env(\"NAME\") or file(\"PATH\")",
                                 where);
        }
        expected = "secret";
        break;
    case FERRY_CFG_TABLE:
        if ((json_is_object(v) && !secret_inner(v)) || json_is_array(v)) {
            *out = unwrap_secrets(v);
            return *out ? 0 : FERRY_ENOMEM;
        }
        expected = "table";
        break;
    default:
        return ferry_err_set(err, FERRY_EPLUGIN, "%s: the plugin declares an unknown type %d",
                             where, f->type);
    }
    return ferry_err_set(err, FERRY_ECONFIG, "%s: expected %s, got %s", where, expected,
                         json_kind(v));
}

int ferry_plugin_config_resolve(const struct ferry_plugin *p, const char *cfg_file,
                                const char *instance, const json_t *settings, json_t **resolved,
                                struct ferry_err *err)
{
    int rc = FERRY_ENOMEM;
    json_t *out = json_object();
    const struct ferry_config_field *fields = p->conn.config;
    char where[512];
    const char *key;
    json_t *value;

    ferry_err_clear(err);
    if (!out) {
        goto cleanup;
    }
    if (settings && !json_is_object(settings)) {
        rc = ferry_err_set(err, FERRY_ECONFIG, "%s: connectors.%s: expected table, got %s",
                           cfg_file, instance, json_kind(settings));
        goto cleanup;
    }
    if (settings) {
        json_object_foreach((json_t *)settings, key, value)
        {
            bool known = false;
            for (size_t i = 0; fields && fields[i].name; i++) {
                if (strcmp(fields[i].name, key) == 0) {
                    known = true;
                    break;
                }
            }
            if (!known) {
                rc = ferry_err_set(err, FERRY_ECONFIG, "%s: connectors.%s.%s: unknown key",
                                   cfg_file, instance, key);
                goto cleanup;
            }
        }
    }
    for (size_t i = 0; fields && fields[i].name; i++) {
        const struct ferry_config_field *f = &fields[i];
        json_t *v = settings ? json_object_get(settings, f->name) : NULL;
        json_t *got = NULL;

        snprintf(where, sizeof(where), "%s: connectors.%s.%s", cfg_file, instance, f->name);
        if (v && !json_is_null(v)) {
            rc = check_value(f, v, where, &got, err);
        } else if (f->def) {
            got = parse_default(p, f, err);
            rc = got ? 0 : FERRY_EPLUGIN;
        } else if (f->required) {
            rc = ferry_err_set(err, FERRY_ECONFIG, "%s: required key is missing", where);
        } else {
            continue;
        }
        if (rc < 0) {
            goto cleanup;
        }
        if (json_object_set_new(out, f->name, got) != 0) {
            rc = FERRY_ENOMEM;
            goto cleanup;
        }
    }
    *resolved = out;
    out = NULL;
    rc = 0;
cleanup:
    if (rc == FERRY_ENOMEM && err && !err->code) {
        ferry_err_set(err, rc, "%s: connectors.%s: out of memory", cfg_file, instance);
    }
    json_decref(out);
    return rc;
}
