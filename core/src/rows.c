/* SPDX-License-Identifier: MIT */
/*
 * ferry.rows: a list of the record (an order's lines) mapped to a list of
 * objects by fields declared once, at load, and evaluated here on the
 * record's JSON (see rows.h). The Lua loop it replaces read each line
 * through a lazy table, called a normal form per field, built a table per
 * line and had the host convert them all back to JSON: about 30,000
 * instructions for an order's two lines, most of an order mapping's cost.
 */
#include "rows.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>

#include "lua_json.h"
#include "normal.h"
#include "util.h"

enum row_source { SRC_PATH, SRC_INDEX, SRC_ARG };
enum row_form { FORM_RAW, FORM_TEXT, FORM_DECIMAL, FORM_QUANTITY, FORM_ID };

static const char *const FORM_NAMES[] = {"raw", "text", "decimal", "quantity", "id", NULL};
/* The Lua form of each, by enum row_form (raw: the value itself). */
static void (*const FORM_FNS[])(lua_State *, int) = {NULL, ferry__lua_push_text,
                                                     ferry__lua_push_decimal,
                                                     ferry__lua_push_quantity, ferry__lua_push_id};

#define MAX_ARGS   16
#define INDEX_MEMO 8

struct row_field {
    char *name;
    size_t name_len;
    enum row_source source;
    char *path; /* SRC_PATH: dotted, as ferry.get's */
    size_t path_len;
    lua_Integer step; /* SRC_INDEX: the row's position times this, as text */
    int arg;          /* SRC_ARG: the call's argument after the list, from 1 */
    enum row_form form;
    lua_Integer cut; /* 0: not cut */
    int when;        /* 1 + the field that must be in the row for this one to be; 0: always */
    /* SRC_ARG: the argument's value last formed (a reference) and its form,
     * which every row of a call, and the next call with the same argument,
     * takes by reference. */
    json_t *memo_in;
    json_t *memo_out;
    /* SRC_INDEX: the first rows' texts ("10", "20", ...), made once. */
    json_t *index_memo[INDEX_MEMO];
};

/*
 * Values a program keeps between calls. JSON strings and numbers are never
 * changed once made (nothing in ferry sets one), so rows, calls and intents
 * can share them by reference: each row of every order takes the same "EA"
 * and "10" rather than a copy of its own.
 */
struct row_program {
    size_t n;
    int args;   /* the highest argument a field takes */
    char *from; /* the list's path in the record a call takes; NULL: the list */
    size_t from_len;
    json_t *arg_text[MAX_ARGS]; /* each argument's JSON, when it was a string */
    struct row_field f[];
};

static const char ROWS_MT[] = "ferry.rows";

static int l_program_gc(lua_State *L)
{
    struct row_program *p = luaL_checkudata(L, 1, ROWS_MT);
    for (size_t i = 0; i < p->n; i++) {
        struct row_field *f = &p->f[i];
        free(f->name);
        free(f->path);
        f->name = NULL;
        f->path = NULL;
        json_decref(f->memo_in);
        json_decref(f->memo_out);
        f->memo_in = f->memo_out = NULL;
        for (size_t k = 0; k < INDEX_MEMO; k++) {
            json_decref(f->index_memo[k]);
            f->index_memo[k] = NULL;
        }
    }
    for (size_t a = 0; a < MAX_ARGS; a++) {
        json_decref(p->arg_text[a]);
        p->arg_text[a] = NULL;
    }
    free(p->from);
    p->from = NULL;
    p->n = 0;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    const struct row_field *x = a, *y = b;
    return strcmp(x->name, y->name);
}

static char *dup_string(lua_State *L, const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (!d) {
        luaL_error(L, "ferry.rows: out of memory");
        return NULL;
    }
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

/* [-0, +0, e] the string at idx as f's path. */
static void set_path(lua_State *L, int idx, struct row_field *f)
{
    size_t len;
    const char *path = lua_tolstring(L, idx, &len);
    if (len == 0) {
        luaL_error(L, "ferry.rows: field %s: the path is empty", f->name);
        return;
    }
    f->source = SRC_PATH;
    f->path = dup_string(L, path, len);
    f->path_len = len;
}

/* [-0, +0, e] the field's declaration (the value at the top of the stack) into f. */
static void compile_field(lua_State *L, struct row_field *f)
{
    const char *name = f->name;
    int t = lua_gettop(L);
    f->form = FORM_RAW;
    if (lua_type(L, t) == LUA_TSTRING) {
        set_path(L, t, f);
        return;
    }
    if (lua_type(L, t) != LUA_TTABLE) {
        luaL_error(L, "ferry.rows: field %s: expected a path or a table, got a %s", name,
                   luaL_typename(L, t));
        return;
    }
    /* Every key is one this knows: a misspelt "cutt" should not be ignored. */
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TNUMBER && lua_isinteger(L, -1) &&
            (lua_tointeger(L, -1) == 1 || lua_tointeger(L, -1) == 2)) {
            continue;
        }
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (!k || (strcmp(k, "index") != 0 && strcmp(k, "arg") != 0 && strcmp(k, "cut") != 0 &&
                   strcmp(k, "when") != 0 && strcmp(k, "form") != 0)) {
            luaL_error(L,
                       "ferry.rows: field %s: unknown key %s (a path, a form, index, arg, "
                       "cut, when)",
                       name, k ? k : luaL_typename(L, -1));
            return;
        }
    }
    int sources = 0;
    if (lua_geti(L, t, 1) == LUA_TSTRING) {
        set_path(L, -1, f);
        sources++;
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "ferry.rows: field %s: the path must be a string", name);
        return;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, t, "index") != LUA_TNIL) {
        int ok;
        f->source = SRC_INDEX;
        f->step = lua_tointegerx(L, -1, &ok);
        if (!ok || f->step < 1 || f->step > 1000000) {
            luaL_error(L,
                       "ferry.rows: field %s: index must be an integer from 1 to 1000000 "
                       "(the step)",
                       name);
            return;
        }
        sources++;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, t, "arg") != LUA_TNIL) {
        int ok;
        lua_Integer a = lua_tointegerx(L, -1, &ok);
        if (!ok || a < 1 || a > MAX_ARGS) {
            luaL_error(L, "ferry.rows: field %s: arg must be 1 to 16 (an argument after the list)",
                       name);
            return;
        }
        f->source = SRC_ARG;
        f->arg = (int)a;
        sources++;
    }
    lua_pop(L, 1);
    if (sources != 1) {
        luaL_error(L, "ferry.rows: field %s: give exactly one of a path, index or arg", name);
        return;
    }
    /* The form is the second entry ({ "sku", "text" }) or form = "text". */
    if (lua_geti(L, t, 2) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_getfield(L, t, "form");
    }
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING) {
            luaL_error(L, "ferry.rows: field %s: the form must be a string", name);
            return;
        }
        const char *form = lua_tostring(L, -1);
        int k = 0;
        while (FORM_NAMES[k] && strcmp(FORM_NAMES[k], form) != 0) {
            k++;
        }
        if (!FORM_NAMES[k]) {
            luaL_error(L,
                       "ferry.rows: field %s: unknown form '%s' (raw, text, decimal, quantity, "
                       "id)",
                       name, form);
            return;
        }
        f->form = (enum row_form)k;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, t, "cut") != LUA_TNIL) {
        int ok;
        f->cut = lua_tointegerx(L, -1, &ok);
        if (!ok || f->cut < 1) {
            luaL_error(L, "ferry.rows: field %s: cut must be a positive integer (characters)",
                       name);
            return;
        }
    }
    lua_pop(L, 1);
    lua_settop(L, t);
}

/* The `when` names, resolved once every field is known (and sorted). */
static void compile_when(lua_State *L, int spec, struct row_program *p)
{
    int top = lua_gettop(L);
    for (size_t i = 0; i < p->n; i++) {
        struct row_field *f = &p->f[i];
        lua_getfield(L, spec, f->name);
        if (lua_type(L, -1) == LUA_TTABLE && lua_getfield(L, -1, "when") != LUA_TNIL) {
            const char *w = lua_tostring(L, -1);
            size_t k = 0;
            while (w && k < p->n && strcmp(p->f[k].name, w) != 0) {
                k++;
            }
            if (!w || k == p->n || k == i) {
                luaL_error(L, "ferry.rows: field %s: when must name another field of the rows",
                           f->name);
                return;
            }
            f->when = (int)k + 1;
        }
        lua_settop(L, top);
    }
    /* Conditions on conditions would need an order; one level is what lines need. */
    for (size_t i = 0; i < p->n; i++) {
        if (p->f[i].when && p->f[p->f[i].when - 1].when) {
            luaL_error(L, "ferry.rows: field %s: when names %s, which has a when itself",
                       p->f[i].name, p->f[p->f[i].when - 1].name);
            return;
        }
    }
}

/* ---- evaluation -------------------------------------------------------------- */

/* The value at the row's dotted path (ferry.get's rules on JSON), or NULL. */
static const json_t *row_path(const json_t *row, const char *path, size_t len)
{
    const json_t *v = row;
    size_t at = 0;
    const char *step;
    size_t step_len;
    bool is_index;
    uint64_t n;
    while (v && ferry_path_step(path, len, &at, &step, &step_len, &is_index, &n)) {
        if (json_is_array(v) && is_index) {
            v = n >= 1 ? json_array_get(v, (size_t)n - 1) : NULL;
        } else if (json_is_object(v)) {
            v = json_object_getn(v, step, step_len);
        } else {
            v = NULL;
        }
    }
    if (json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0)) {
        return NULL;
    }
    return v;
}

/* Text shorter than this is formed on the C stack; longer goes through Lua. */
#define DIRECT_MAX 256

enum direct { DIRECT_NONE, DIRECT_VALUE, DIRECT_LUA, DIRECT_NOMEM };

/*
 * The field's form of a JSON string or integer, made straight from its
 * bytes: the same functions as ferry.text and the others, without making
 * Lua strings on the way. DIRECT_LUA for what only the Lua forms know how
 * to write (a real, as Lua formats floats), and for very long text.
 */
static enum direct form_direct(const struct row_field *f, const json_t *v, json_t **out)
{
    char buf[DIRECT_MAX + 4 + sizeof(FERRY_NORMAL_ELLIPSIS)];
    const char *s;
    size_t len;
    *out = NULL;
    if (json_is_integer(v)) {
        len = ferry_normal_int_text((int64_t)json_integer_value(v), buf);
        if (f->form == FORM_DECIMAL) {
            memcpy(buf + len, ".00", 3);
            len += 3;
        }
        s = buf;
    } else if (json_is_string(v) && json_string_length(v) <= DIRECT_MAX) {
        s = json_string_value(v);
        len = json_string_length(v);
        if (f->form == FORM_DECIMAL || f->form == FORM_QUANTITY) {
            if (!ferry_normal_decimal(s, len, buf, &len)) {
                return DIRECT_NONE;
            }
            /* A quantity is a decimal without its ".00" when it is whole. */
            if (f->form == FORM_QUANTITY && len >= 3 && memcmp(buf + len - 3, ".00", 3) == 0) {
                len -= 3;
            }
            s = buf;
        } else if (f->form != FORM_RAW) {
            s = ferry_normal_trim(s, len, &len);
            if (!s) {
                return DIRECT_NONE;
            }
        }
    } else {
        return DIRECT_LUA;
    }
    if (f->cut > 0) {
        bool ellipsis;
        size_t keep;
        const char *head = ferry_normal_cut(s, len, (size_t)f->cut, &keep, &ellipsis);
        if (ellipsis) {
            /* head lies within s (buf or the record's string): move, then append. */
            memmove(buf, head ? head : buf, head ? keep : 0);
            len = head ? keep : 0;
            memcpy(buf + len, FERRY_NORMAL_ELLIPSIS, sizeof(FERRY_NORMAL_ELLIPSIS) - 1);
            len += sizeof(FERRY_NORMAL_ELLIPSIS) - 1;
            s = buf;
        } else {
            s = head;
            len = keep;
        }
    }
    /* The record's own string, unchanged by the form: shared, not copied. */
    if (json_is_string(v) && s == json_string_value(v) && len == json_string_length(v)) {
        *out = json_incref((json_t *)v);
        return DIRECT_VALUE;
    }
    /* Valid UTF-8 in (a JSON string, digits), valid out: trimming and
     * cutting stop at characters. */
    *out = json_stringn_nocheck(s, len);
    return *out ? DIRECT_VALUE : DIRECT_NOMEM;
}

/* [-0, +0, e] v in the field's form as a new JSON value, or NULL for none. */
static json_t *in_form(lua_State *L, const struct row_field *f, const json_t *v, size_t row)
{
    json_t *out;
    if (!v) {
        return NULL;
    }
    if (f->form != FORM_RAW || (f->cut > 0 && json_is_string(v))) {
        switch (form_direct(f, v, &out)) {
        case DIRECT_NONE:
            return NULL;
        case DIRECT_VALUE:
            return out;
        case DIRECT_NOMEM:
            luaL_error(L, "ferry.rows: out of memory");
            return NULL;
        case DIRECT_LUA:
            break;
        }
    }
    if ((json_is_object(v) || json_is_array(v)) && f->form != FORM_RAW) {
        return NULL; /* no text, number or id in a table, as the Lua forms answer */
    }
    if (f->form == FORM_RAW && (f->cut == 0 || !json_is_string(v))) {
        if (!json_is_object(v) && !json_is_array(v)) {
            return json_incref((json_t *)v); /* a scalar is never changed: shared */
        }
        out = json_deep_copy(v);
        if (!out) {
            luaL_error(L, "ferry.rows: out of memory");
        }
        return out;
    }
    ferry__lua_push_json(L, v);
    if (FORM_FNS[f->form]) {
        FORM_FNS[f->form](L, -1);
        lua_remove(L, -2);
    }
    if (f->cut > 0 && lua_type(L, -1) == LUA_TSTRING) {
        ferry__lua_push_cut(L, -1, f->cut);
        lua_remove(L, -2);
    }
    out = NULL;
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        out = json_stringn(s, len);
        if (!out) {
            luaL_error(L, "ferry.rows: row %d field %s: the text is not valid UTF-8", (int)row + 1,
                       f->name);
        }
    }
    lua_pop(L, 1);
    return out;
}

/* The position's text: "10", "20", ... for a step of 10 (a new reference). */
static json_t *index_text(struct row_field *f, size_t row)
{
    char buf[FERRY_NORMAL_INT_MAX];
    json_t *t;
    if (row < INDEX_MEMO && f->index_memo[row]) {
        return json_incref(f->index_memo[row]);
    }
    t = json_stringn_nocheck(buf,
                             ferry_normal_int_text((int64_t)f->step * (int64_t)(row + 1), buf));
    if (t && row < INDEX_MEMO) {
        f->index_memo[row] = json_incref(t);
    }
    return t;
}

/* [-0, +0, e] argument v in the field's form (a new reference, or NULL for
 * none): formed once while the argument stays the same JSON value. */
static json_t *arg_form(lua_State *L, struct row_field *f, json_t *v, size_t row)
{
    json_t *out;
    if (!v) {
        return NULL;
    }
    if (v == f->memo_in) {
        return json_incref(f->memo_out);
    }
    out = in_form(L, f, v, row);
    if (out && (json_is_object(out) || json_is_array(out))) {
        return out; /* a table is each row's own copy: not kept */
    }
    json_decref(f->memo_in);
    json_decref(f->memo_out);
    f->memo_in = json_incref(v);
    f->memo_out = json_incref(out);
    return out;
}

/* [-0, +0, e] fills row object `out` from the list's element `v` (any JSON). */
static void fill_row(lua_State *L, struct row_program *p, const json_t *v, size_t row,
                     json_t *const *args, json_t *out)
{
    /* Those without a condition first, so that a condition sees its field. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < p->n; i++) {
            struct row_field *f = &p->f[i];
            json_t *val = NULL;
            if ((f->when != 0) != (pass == 1)) {
                continue;
            }
            if (f->when &&
                !json_object_getn(out, p->f[f->when - 1].name, p->f[f->when - 1].name_len)) {
                continue;
            }
            switch (f->source) {
            case SRC_PATH:
                val = in_form(L, f,
                              json_is_object(v) || json_is_array(v)
                                  ? row_path(v, f->path, f->path_len)
                                  : NULL,
                              row);
                break;
            case SRC_INDEX:
                val = index_text(f, row);
                if (!val) {
                    luaL_error(L, "ferry.rows: out of memory");
                }
                break;
            case SRC_ARG:
                val = arg_form(L, f, args[f->arg - 1], row);
                break;
            }
            if (val && json_object_setn_new_nocheck(out, f->name, f->name_len, val) < 0) {
                luaL_error(L, "ferry.rows: out of memory");
            }
        }
    }
}

/* [-0, +1, e] the JSON of the Lua value at idx, held by the stack; NULL for nil, null and "". */
static const json_t *as_json(lua_State *L, int idx, const char *what)
{
    struct ferry_err err = {0};
    json_t **slot;
    const json_t *j;
    if (lua_isnil(L, idx) || ferry__lua_is_null(L, idx) ||
        (lua_type(L, idx) == LUA_TSTRING && lua_rawlen(L, idx) == 0)) {
        lua_pushnil(L);
        return NULL;
    }
    j = ferry__lua_record_json(L, idx);
    if (j) {
        lua_pushnil(L);
        return j;
    }
    slot = ferry__lua_push_built(L);
    if (ferry__lua_to_json(L, idx, what, slot, &err) < 0) {
        luaL_error(L, "ferry.rows: %s", err.msg);
    }
    return *slot;
}

/*
 * [-0, +1, e] argument a (at idx) as JSON, NULL for nil, null and "". A
 * string, what arguments mostly are ("EA", a currency), is kept in the
 * program while the calls pass the same text, so it is made once.
 */
static json_t *arg_json(lua_State *L, struct row_program *p, int idx, int a)
{
    size_t len;
    const char *s;
    json_t *j;
    if (lua_type(L, idx) != LUA_TSTRING) {
        return (json_t *)as_json(L, idx, "rows argument");
    }
    lua_pushnil(L);
    s = lua_tolstring(L, idx, &len);
    if (len == 0) {
        return NULL;
    }
    j = p->arg_text[a];
    if (j && json_string_length(j) == len && memcmp(json_string_value(j), s, len) == 0) {
        return j;
    }
    j = json_stringn(s, len);
    if (!j) {
        luaL_error(L, "ferry.rows: argument %d is not valid UTF-8 text", a + 1);
        return NULL;
    }
    json_decref(p->arg_text[a]);
    p->arg_text[a] = j;
    return j;
}

/*
 * [-0, +1, e] the list at the program's `from` path in the record at idx, as
 * JSON held by the stack (NULL for none). Straight from the record's JSON
 * while the script has not read the path's first key; from Lua otherwise,
 * as ferry.get reads it.
 */
static const json_t *list_at(lua_State *L, const struct row_program *p, int idx)
{
    size_t at = 0, step_len;
    const char *step;
    bool is_index, json_ok = false;
    uint64_t n;
    const json_t *v = NULL;
    if (ferry_path_step(p->from, p->from_len, &at, &step, &step_len, &is_index, &n)) {
        v = ferry__lua_record_field(L, idx, step, step_len, &json_ok);
    }
    if (json_ok) {
        lua_pushnil(L);
        return v ? row_path(v, p->from + at, p->from_len - at) : NULL;
    }
    at = 0;
    lua_pushvalue(L, idx);
    while (ferry_path_step(p->from, p->from_len, &at, &step, &step_len, &is_index, &n)) {
        if (lua_type(L, -1) != LUA_TTABLE) {
            lua_pop(L, 1);
            lua_pushnil(L);
            break;
        }
        if (is_index && ferry__lua_is_array(L, -1)) {
            lua_geti(L, -1, (lua_Integer)n);
        } else {
            lua_pushlstring(L, step, step_len);
            lua_gettable(L, -2);
        }
        lua_remove(L, -2);
    }
    if (lua_type(L, -1) != LUA_TTABLE) {
        return NULL; /* no list, or a value that is not one */
    }
    v = as_json(L, lua_gettop(L), "rows list");
    lua_remove(L, -2);
    return v;
}

/* [-0, +1|2, -] nil, and with a `from` path whether there is a list. */
static int no_rows(lua_State *L, const struct row_program *p, bool found)
{
    lua_pushnil(L);
    if (!p->from) {
        return 1;
    }
    lua_pushboolean(L, found);
    return 2;
}

/*
 * rows(list, ...): the list's rows as an array the host converts by
 * reference, or nil. rows(record, ...) with a `from` path: the same for the
 * list there, and whether there is a list (an array, even an empty one).
 */
static int l_rows_apply(lua_State *L)
{
    struct row_program *p = luaL_checkudata(L, lua_upvalueindex(1), ROWS_MT);
    json_t *args[MAX_ARGS] = {NULL};
    int nargs = lua_gettop(L) - 1;
    const json_t *list;
    json_t **slot;
    size_t n;
    luaL_checkstack(L, p->args + 8, "ferry.rows");
    if (lua_isnoneornil(L, 1) || ferry__lua_is_null(L, 1)) {
        return no_rows(L, p, false);
    }
    luaL_argexpected(L, lua_type(L, 1) == LUA_TTABLE, 1, p->from ? "a record" : "a list");
    lua_settop(L, 1 + p->args);
    list = p->from ? list_at(L, p, 1) : as_json(L, 1, "rows list");
    for (int a = 0; a < p->args; a++) {
        args[a] = a < nargs ? arg_json(L, p, 2 + a, a) : NULL;
    }
    /* An empty table converts to {}: no rows either way. */
    if (json_is_object(list) && json_object_size(list) == 0) {
        return no_rows(L, p, true);
    }
    if (!json_is_array(list)) {
        if (p->from) {
            return no_rows(L, p, false);
        }
        return luaL_error(L, "ferry.rows: expected a list (an array), got an object");
    }
    n = json_array_size(list);
    if (n == 0) {
        return no_rows(L, p, true);
    }
    slot = ferry__lua_push_built(L);
    *slot = json_array();
    if (!*slot) {
        return luaL_error(L, "ferry.rows: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        json_t *row = json_object();
        if (!row || json_array_append_new(*slot, row) < 0) {
            return luaL_error(L, "ferry.rows: out of memory");
        }
        fill_row(L, p, json_array_get(list, i), i, args, row);
    }
    if (!p->from) {
        return 1;
    }
    lua_pushboolean(L, 1);
    return 2;
}

/* ferry.rows(spec[, from]): the compiled fields, as a function(list, ...) or function(record, ...).
 */
static int l_rows(lua_State *L)
{
    struct row_program *p;
    size_t n = 0;
    size_t from_len = 0;
    const char *from = NULL;
    luaL_checktype(L, 1, LUA_TTABLE);
    if (!lua_isnoneornil(L, 2)) {
        from = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &from_len) : NULL;
        if (!from || from_len == 0) {
            return luaL_error(L, "ferry.rows: from must be a non-empty path (where the list "
                                 "is in the record)");
        }
    }
    lua_settop(L, 2);
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            return luaL_error(L, "ferry.rows: field names must be strings, got a %s",
                              luaL_typename(L, -1));
        }
        n++;
    }
    if (n == 0) {
        return luaL_error(L, "ferry.rows: no fields");
    }
    p = lua_newuserdatauv(L, sizeof(*p) + n * sizeof(p->f[0]), 0);
    memset(p, 0, sizeof(*p) + n * sizeof(p->f[0]));
    luaL_setmetatable(L, ROWS_MT);
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        size_t len, chars;
        const char *name = lua_tolstring(L, -2, &len);
        struct row_field *f = &p->f[p->n];
        if (!ferry_normal_utf8_len(name, len, &chars) || memchr(name, '\0', len)) {
            return luaL_error(L, "ferry.rows: a field name is not valid UTF-8 text");
        }
        f->name = dup_string(L, name, len);
        f->name_len = len;
        p->n++;
        compile_field(L, f);
        if (f->source == SRC_ARG && f->arg > p->args) {
            p->args = f->arg;
        }
        lua_pop(L, 1);
    }
    if (from) {
        p->from = dup_string(L, from, from_len);
        p->from_len = from_len;
    }
    qsort(p->f, p->n, sizeof(p->f[0]), by_name);
    compile_when(L, 1, p);
    lua_pushcclosure(L, l_rows_apply, 1);
    return 1;
}

void ferry__lua_rows_register(lua_State *L)
{
    if (luaL_newmetatable(L, ROWS_MT)) {
        lua_pushcfunction(L, l_program_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_rows);
    lua_setfield(L, -2, "rows");
}
