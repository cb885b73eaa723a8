/* SPDX-License-Identifier: MIT */
/*
 * The Lua mapping host (see mapping.h): a sandboxed Lua 5.4 state per
 * struct ferry_lua, mapping sets compiled into it, and runs that turn one
 * record into intents. The declarative part (validating a mapping table,
 * building intents) is lua/ferry/engine.lua, loaded at start-up, so that
 * integrators can read what a mapping means; this file owns the sandbox,
 * the limits, the file loading and the JSON boundary.
 *
 * Every step that can raise a Lua error runs inside lua_pcall with a
 * traceback handler: an error outside it would reach the panic handler and
 * abort the daemon.
 */
#include "mapping.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <openssl/evp.h>

#include "log.h"
#include "lua_json.h"
#include "normal.h"
#include "rows.h"
#include "util.h"

#define DEFAULT_MEM_MAX       ((size_t)64 * 1024 * 1024)
#define DEFAULT_TIME_LIMIT_MS 1000
#define MAX_TIME_LIMIT_MS     (INT64_C(24) * 3600 * 1000)
#define GUARD_SIGNAL          SIGURG
#define GUARD_TICK_MAX_MS     100

/*
 * Small blocks of a state come from its own free lists (see on_alloc). Not
 * under AddressSanitizer, which must see every Lua object as its own block
 * to catch the host's mistakes with them.
 */
#if defined(__SANITIZE_ADDRESS__)
#define POOL_MAX_BYTES 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_MAX_BYTES 0
#endif
#endif
#ifndef POOL_MAX_BYTES
#define POOL_MAX_BYTES 4096
#endif
#define POOL_GRAIN       16 /* block sizes are multiples of this, so blocks stay aligned */
#define POOL_CLASSES     (POOL_MAX_BYTES / POOL_GRAIN)
#define POOL_CHUNK_BYTES ((size_t)64 * 1024)

/* A chunk's header; blocks follow it, aligned like malloc's. */
struct pool_chunk {
    union {
        struct pool_chunk *next;
        max_align_t align;
    } u;
};
#define MAX_SOURCE_BYTES ((long)1024 * 1024)
#define MAX_PATH_BYTES   4096

struct ferry_lua {
    lua_State *L;
    char *lua_dir;
    size_t mem_used;
    size_t mem_max;
    void *pool_free[POOL_CLASSES + 1]; /* free blocks by size class (see on_alloc) */
    char *pool_next;                   /* the unused rest of the newest chunk */
    char *pool_end;
    struct pool_chunk *pool_chunks; /* every chunk, freed with the state */
    int64_t time_limit_ms;          /* per call */
    bool limit_hit;       /* set by the stop hook so that pcall() inside scripts rethrows */
    int engine_ref;       /* registry ref of lua/ferry/engine.lua's module table */
    int global_cache_ref; /* require cache outside any set (the engine's modules) */
    unsigned char engine_digest[32]; /* SHA-256 of the engine and what it required */
    struct ferry_mapping_set *sets;  /* live sets, detached when the state goes */
    /* The call in progress: where `require` looks and caches, what it hashes. */
    const char *cur_path;
    const char *cur_dir;
    int cur_set_ref; /* registry ref of the set whose module cache is used; LUA_NOREF: global */
    EVP_MD_CTX *cur_sha;
    /* The runaway guard (see "limits" below). */
    atomic_uint_fast64_t run_gen;     /* odd while a call runs; call_begin and call_end bump it */
    atomic_uint_fast64_t stop_gen;    /* the run the guard wants stopped */
    atomic_int kill_lock;             /* 1 while the guard signals or call_end ends a run */
    pthread_t owner;                  /* the thread of the run in progress */
    volatile sig_atomic_t stop_armed; /* the stop hook is set and must go before the next call */
    bool guarded;                     /* in the guard's list */
    struct ferry_lua *guard_next;     /* the guard's list, under guard.mu */
    uint_fast64_t guard_gen;          /* guard thread only: the run it last saw */
    int64_t guard_since_ms;           /* guard thread only: since when it sees that run */
};

struct ferry_mapping {
    char *name;
    char *path;   /* the mapping file, as given (dir + "/mapping.lua" for a directory) */
    char *dir;    /* where its own modules live */
    char *system; /* source connector instance */
    char *object;
    char **events; /* the `on` list; NULL: every event */
    size_t nevents;
    char *target_system;
    char *target_object;
    char **fields; /* target field names written, in the engine's (sorted) order */
    size_t nfields;
};

/*
 * The settings objects of a context (ctx.settings, ctx.mapping_settings),
 * held, with the number the engine's `prepare` goes by and, once a run has
 * needed them, the same objects as Lua (registry refs).
 */
#define SETTINGS_SLOTS 4
struct settings_slot {
    json_t *seen[2];
    int ref[2];
    bool converted;
    lua_Integer gen; /* 0: a free slot */
    uint64_t used;   /* settings_tick when last used: the oldest is replaced */
};

struct ferry_mapping_set {
    struct ferry_lua *fl; /* NULL once the state was freed */
    struct ferry_mapping_set *next;
    int ref; /* registry ref of {mappings = {...}, modules = {...}} */
    struct ferry_mapping *maps;
    size_t nmaps;
    char hash[65];
    /* The last answer of ferry_mapping_set_targets_of: asked for every job. */
    char *targets_system, *targets_object;
    json_t *targets;
    /* The settings objects recent runs' contexts carried: see settings_seen. */
    struct settings_slot settings[SETTINGS_SLOTS];
    struct settings_slot *settings_cur; /* the current run's */
    lua_Integer settings_gens;          /* numbers given out so far */
    uint64_t settings_tick;
};

static const char env_mt_key = 0;
/* In a read-only proxy's metatable: the name its errors give the table. */
static const char readonly_key = 0;

/* ---- limits ---------------------------------------------------------------- */

/*
 * Lua allocates and frees a small block for almost every value a record
 * turns into (strings, tables, their parts), and with glibc most of those
 * miss its per-thread cache: a tenth of a record's instructions went to
 * malloc and free. Blocks up to POOL_MAX_BYTES instead come from per-class
 * free lists, carved from 64 KiB chunks that live as long as the state.
 * Lua gives the size of every block it frees or resizes, so the size alone
 * tells which kind a block is.
 *
 * The memory cap counts the chunks, not the blocks in them: a free block
 * only serves its own size class, so a script that fills the state with
 * blocks of one size, drops them and fills it with another would otherwise
 * grow the process far past the cap while its live data stays below it.
 */
static bool pooled(size_t size)
{
    return size >= 1 && size <= POOL_MAX_BYTES;
}

static void *pool_alloc(struct ferry_lua *fl, size_t size)
{
    size_t c = (size - 1) / POOL_GRAIN;
    size_t bytes = (c + 1) * POOL_GRAIN;
    void *p = fl->pool_free[c];
    if (p) {
        memcpy(&fl->pool_free[c], p, sizeof(void *));
        return p;
    }
    if ((size_t)(fl->pool_end - fl->pool_next) < bytes) {
        struct pool_chunk *chunk;
        if (POOL_CHUNK_BYTES > fl->mem_max - fl->mem_used) {
            return NULL;
        }
        chunk = malloc(POOL_CHUNK_BYTES);
        if (!chunk) {
            return NULL;
        }
        fl->mem_used += POOL_CHUNK_BYTES;
        chunk->u.next = fl->pool_chunks;
        fl->pool_chunks = chunk;
        fl->pool_next = (char *)(chunk + 1);
        fl->pool_end = (char *)chunk + POOL_CHUNK_BYTES;
    }
    p = fl->pool_next;
    fl->pool_next += bytes;
    return p;
}

static void pool_release(struct ferry_lua *fl, void *p, size_t size)
{
    size_t c = (size - 1) / POOL_GRAIN;
    memcpy(p, &fl->pool_free[c], sizeof(void *));
    fl->pool_free[c] = p;
}

/* A new block of either kind; the cap is checked for malloc'd ones here, for chunks in
 * pool_alloc. */
static void *block_alloc(struct ferry_lua *fl, size_t size)
{
    void *p;
    if (pooled(size)) {
        return pool_alloc(fl, size);
    }
    if (size > fl->mem_max - fl->mem_used) {
        return NULL;
    }
    p = malloc(size);
    if (p) {
        fl->mem_used += size;
    }
    return p;
}

static void block_free(struct ferry_lua *fl, void *p, size_t size)
{
    if (pooled(size)) {
        pool_release(fl, p, size);
    } else {
        free(p);
        fl->mem_used -= size;
    }
}

static void *on_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct ferry_lua *fl = ud;
    void *p;
    if (!ptr) {
        /* osize is a type tag here, not a size (lua_Alloc contract). */
        return nsize == 0 ? NULL : block_alloc(fl, nsize);
    }
    if (nsize == 0) {
        block_free(fl, ptr, osize);
        return NULL;
    }
    if (pooled(osize) && pooled(nsize) && (osize - 1) / POOL_GRAIN == (nsize - 1) / POOL_GRAIN) {
        return ptr; /* the block already has room */
    }
    if (!pooled(osize) && !pooled(nsize)) {
        if (nsize > osize && nsize - osize > fl->mem_max - fl->mem_used) {
            return NULL;
        }
        p = realloc(ptr, nsize);
        if (p) {
            fl->mem_used = fl->mem_used - osize + nsize;
        }
        return p;
    }
    /* Between a pooled block and a malloc'd one, or another class. A failed shrink is
     * fine too: Lua 5.4 keeps the old block then (lmem.c). */
    p = block_alloc(fl, nsize);
    if (p) {
        memcpy(p, ptr, osize < nsize ? osize : nsize);
        block_free(fl, ptr, osize);
    }
    return p;
}

static void pool_destroy(struct ferry_lua *fl)
{
    while (fl->pool_chunks) {
        struct pool_chunk *next = fl->pool_chunks->u.next;
        free(fl->pool_chunks);
        fl->pool_chunks = next;
    }
}

static struct ferry_lua *get_host(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

/*
 * The time limit per call. A count hook would be the obvious bound, but in
 * Lua 5.4 any count hook sends every VM instruction through
 * luaG_traceexec, whatever the count: a fifth of the instructions of a
 * mapped record went to the hook alone. So calls run without a hook, and a
 * guard thread (one per process, alive while any state is) looks at each
 * state's run generation every few ms. A run it sees for longer than the
 * limit gets GUARD_SIGNAL on its own thread; the handler then sets a count
 * hook that fires at the next instruction, the way lua.c stops a script on
 * SIGINT (lua_sethook only stores a few fields and is safe from a handler
 * running in the thread that runs the state). The hook raises the error
 * and sets limit_hit, so that pcall in a script cannot swallow it. A call
 * pays two atomic stores and one exchange, and no system call.
 *
 * The limit is wall time, from the first time the guard sees the run: a
 * call is stopped after between 1 and 1.2 times the limit (the tick is a
 * tenth of the smallest limit, at most GUARD_TICK_MAX_MS). C code the
 * script calls (a long pattern match, a library function) is not
 * interrupted; the hook fires when it returns to Lua. ThreadSanitizer holds
 * a signal back until the thread makes an intercepted call, which a Lua
 * loop never does: under TSan a runaway loop is not stopped.
 */
static _Thread_local _Atomic(struct ferry_lua *) tl_running; /* the state running on this thread */

static struct {
    pthread_mutex_t life; /* serialises starting and stopping the thread */
    pthread_mutex_t mu;   /* the list and the fields below */
    pthread_cond_t cond;  /* wakes the thread to stop */
    struct ferry_lua *states;
    bool running;
    bool started; /* the thread is in its loop */
    bool stop;
    pthread_t thread;
    struct sigaction old_action;
} guard = {.life = PTHREAD_MUTEX_INITIALIZER, .mu = PTHREAD_MUTEX_INITIALIZER};

static void on_stop(lua_State *L, lua_Debug *ar)
{
    struct ferry_lua *fl = get_host(L);
    (void)ar;
    fl->limit_hit = true;
    /* Level 0 inside a hook is the interrupted function: its line is the culprit. */
    luaL_where(L, 0);
    lua_pushfstring(L, "time limit exceeded (%d ms per call)", (int)fl->time_limit_ms);
    lua_concat(L, 2);
    lua_error(L);
}

static void on_guard_signal(int sig)
{
    int saved_errno = errno;
    struct ferry_lua *fl = atomic_load_explicit(&tl_running, memory_order_relaxed);
    (void)sig;
    /* The run may have ended since the guard sent the signal: stop only the one it meant. */
    if (fl) {
        uint_fast64_t g = atomic_load_explicit(&fl->run_gen, memory_order_relaxed);
        if ((g & 1) && atomic_load_explicit(&fl->stop_gen, memory_order_relaxed) == g) {
            fl->stop_armed = 1;
            lua_sethook(fl->L, on_stop, LUA_MASKCOUNT, 1);
        }
    }
    errno = saved_errno;
}

/* Under guard.mu. */
static void guard_stop_run(struct ferry_lua *fl, uint_fast64_t g)
{
    /* Held, call_end cannot end the run, so the owner is still in it and alive. */
    if (atomic_exchange_explicit(&fl->kill_lock, 1, memory_order_acquire) != 0) {
        return; /* the run is ending now */
    }
    if (atomic_load_explicit(&fl->run_gen, memory_order_relaxed) == g) {
        atomic_store_explicit(&fl->stop_gen, g, memory_order_release);
        pthread_kill(fl->owner, GUARD_SIGNAL);
    }
    atomic_store_explicit(&fl->kill_lock, 0, memory_order_release);
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *guard_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&guard.mu);
    guard.started = true;
    pthread_cond_broadcast(&guard.cond);
    while (!guard.stop) {
        int64_t now = monotonic_ms();
        int64_t tick = GUARD_TICK_MAX_MS;
        int64_t wake;
        struct timespec until;
        for (struct ferry_lua *fl = guard.states; fl; fl = fl->guard_next) {
            uint_fast64_t g = atomic_load_explicit(&fl->run_gen, memory_order_acquire);
            int64_t t = fl->time_limit_ms / 10;
            if (t < tick) {
                tick = t > 0 ? t : 1;
            }
            if (!(g & 1) || g != fl->guard_gen) {
                fl->guard_gen = g;
                fl->guard_since_ms = now;
            } else if (now - fl->guard_since_ms >= fl->time_limit_ms) {
                /* Again every tick: a signal may land while the run is in C code
                 * that clears nothing, but a repeat costs nothing. */
                guard_stop_run(fl, g);
            }
        }
        wake = now + tick;
        until.tv_sec = (time_t)(wake / 1000);
        until.tv_nsec = (long)(wake % 1000) * 1000000;
        pthread_cond_timedwait(&guard.cond, &guard.mu, &until);
    }
    pthread_mutex_unlock(&guard.mu);
    return NULL;
}

/* Under guard.life. */
static int guard_start(struct ferry_err *err)
{
    int rc;
    pthread_condattr_t ca;
    sigset_t all, old;
    struct sigaction sa;
    if (pthread_condattr_init(&ca) != 0) {
        return ferry_err_set(err, FERRY_ENOMEM, "cannot start the mapping time guard");
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&guard.cond, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        return ferry_err_set(err, FERRY_ENOMEM, "cannot start the mapping time guard");
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_guard_signal;
    sa.sa_flags = SA_RESTART; /* a script's require reading a file must not see EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(GUARD_SIGNAL, &sa, &guard.old_action);
    /* The guard thread takes no process signals: libuv's handlers run on the threads that
     * expect them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&guard.thread, NULL, guard_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        sigaction(GUARD_SIGNAL, &guard.old_action, NULL);
        pthread_cond_destroy(&guard.cond);
        return ferry_err_set(err, FERRY_ENOMEM, "cannot start the mapping time guard: %s",
                             strerror(rc));
    }
    /*
     * Return only once the thread runs its loop, which takes no lock outside
     * guard.mu and allocates nothing: a thread still starting may hold the
     * allocator's locks, and a process that forks then (a test that kills a
     * child mid-job does) leaves its child waiting on them forever.
     */
    pthread_mutex_lock(&guard.mu);
    while (!guard.started) {
        pthread_cond_wait(&guard.cond, &guard.mu);
    }
    pthread_mutex_unlock(&guard.mu);
    guard.running = true;
    return 0;
}

static int guard_add(struct ferry_lua *fl, struct ferry_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&guard.life);
    if (!guard.running) {
        rc = guard_start(err);
    }
    if (rc == 0) {
        pthread_mutex_lock(&guard.mu);
        fl->guard_next = guard.states;
        guard.states = fl;
        fl->guarded = true;
        pthread_mutex_unlock(&guard.mu);
    }
    pthread_mutex_unlock(&guard.life);
    return rc;
}

/* The last state stops and joins the thread, so that nothing outlives the states. */
static void guard_remove(struct ferry_lua *fl)
{
    bool last;
    if (!fl->guarded) {
        return;
    }
    pthread_mutex_lock(&guard.life);
    pthread_mutex_lock(&guard.mu);
    for (struct ferry_lua **pp = &guard.states; *pp; pp = &(*pp)->guard_next) {
        if (*pp == fl) {
            *pp = fl->guard_next;
            break;
        }
    }
    fl->guarded = false;
    last = guard.states == NULL;
    if (last) {
        guard.stop = true;
        pthread_cond_signal(&guard.cond);
    }
    pthread_mutex_unlock(&guard.mu);
    if (last) {
        pthread_join(guard.thread, NULL);
        pthread_cond_destroy(&guard.cond);
        sigaction(GUARD_SIGNAL, &guard.old_action, NULL);
        guard.stop = false;
        guard.started = false;
        guard.running = false;
    }
    pthread_mutex_unlock(&guard.life);
}

static int on_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    ferry_error("unprotected Lua error: %s", msg ? msg : "(not a string)");
    return 0; /* Lua aborts after this */
}

static void call_begin(struct ferry_lua *fl, const char *path, const char *dir, int set_ref,
                       EVP_MD_CTX *sha)
{
    uint_fast64_t g = atomic_load_explicit(&fl->run_gen, memory_order_relaxed);
    /* A stop that landed as the previous run ended. */
    if (fl->stop_armed) {
        lua_sethook(fl->L, NULL, 0, 0);
        fl->stop_armed = 0;
    }
    fl->limit_hit = false;
    fl->cur_path = path;
    fl->cur_dir = dir;
    fl->cur_set_ref = set_ref;
    fl->cur_sha = sha;
    fl->owner = pthread_self();
    atomic_store_explicit(&tl_running, fl, memory_order_relaxed);
    atomic_store_explicit(&fl->run_gen, g + 1, memory_order_release);
}

static void call_end(struct ferry_lua *fl)
{
    uint_fast64_t g = atomic_load_explicit(&fl->run_gen, memory_order_relaxed);
    /* Once the run is over, the guard must not signal this thread, which may exit. */
    while (atomic_exchange_explicit(&fl->kill_lock, 1, memory_order_acquire) != 0) {
        sched_yield();
    }
    atomic_store_explicit(&fl->run_gen, g + 1, memory_order_release);
    atomic_store_explicit(&fl->kill_lock, 0, memory_order_release);
    atomic_store_explicit(&tl_running, NULL, memory_order_relaxed);
    fl->cur_path = NULL;
    fl->cur_dir = NULL;
    fl->cur_set_ref = LUA_NOREF;
    fl->cur_sha = NULL;
}

/*
 * [-0, +1, m] pushes "file:line: " of the innermost Lua function at `level`
 * or above, "" when none runs. Errors are often raised by C functions (error,
 * table.insert, a metamethod) whose own frame has no line; the integrator
 * wants the script line that called them.
 */
static void push_lua_where(lua_State *L, int level)
{
    lua_Debug ar;
    while (lua_getstack(L, level, &ar)) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
            return;
        }
        level++;
    }
    lua_pushliteral(L, "");
}

/*
 * [-0, +1, m] the message handler: the message plus a traceback. Lua adds
 * the position only to string errors, so for error({}), error(42) or error()
 * the handler adds it: a dead letter is only useful if it says where.
 */
static int on_error(lua_State *L)
{
    const char *msg;
    if (lua_type(L, 1) == LUA_TSTRING) {
        msg = lua_tostring(L, 1);
    } else {
        push_lua_where(L, 1);
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
            lua_concat(L, 2);
        } else {
            if (lua_gettop(L) > 2) {
                lua_pop(L, 1); /* a __tostring that returned no string */
            }
            if (lua_type(L, 1) == LUA_TNUMBER) {
                lua_pushvalue(L, 1);
                lua_pushfstring(L, "error object is a number value (%s)", lua_tostring(L, -1));
                lua_remove(L, -2);
            } else {
                lua_pushfstring(L, "error object is a %s value", luaL_typename(L, 1));
            }
            lua_concat(L, 2);
        }
        msg = lua_tostring(L, -1);
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/*
 * Runs fn(arg) protected, with the traceback handler; on failure fills err
 * (FERRY_EMAPPING, first line of the message) and collects the garbage the
 * failed call left, so that the state serves the next call. Leaves fn's
 * results on the stack on success.
 */
static int pcall_host(struct ferry_lua *fl, lua_CFunction fn, void *arg, int nresults,
                      struct ferry_err *err)
{
    lua_State *L = fl->L;
    int base = lua_gettop(L);
    int status;
    lua_pushcfunction(L, on_error);
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, arg);
    status = lua_pcall(L, 1, nresults, base + 1);
    if (status == LUA_OK) {
        lua_remove(L, base + 1);
        return 0;
    }
    if (status == LUA_ERRMEM) {
        ferry_err_set(err, FERRY_EMAPPING, "%s: memory limit exceeded (%zu bytes)",
                      fl->cur_path ? fl->cur_path : "lua", fl->mem_max);
    } else {
        const char *msg = lua_tostring(L, -1);
        size_t line_len;
        if (!msg) {
            msg = "(no message)";
        }
        line_len = strcspn(msg, "\n");
        if (status == LUA_ERRERR) {
            ferry_err_set(err, FERRY_EMAPPING, "%s: error while handling an error: %.*s",
                          fl->cur_path ? fl->cur_path : "lua", (int)line_len, msg);
        } else {
            ferry_err_set(err, FERRY_EMAPPING, "%.*s", (int)line_len, msg);
        }
        ferry_debug("lua error: %s", msg);
    }
    lua_settop(L, base);
    lua_gc(L, LUA_GCCOLLECT, 0);
    return FERRY_EMAPPING;
}

/* ---- files ----------------------------------------------------------------- */

static char *path_join(const char *a, const char *b)
{
    size_t la = strlen(a);
    size_t lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (!p) {
        return NULL;
    }
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Reads a whole source file; *out is malloc'd and NUL-terminated. */
static int read_source(const char *path, char **out, size_t *len, char *why, size_t why_size)
{
    int rc = FERRY_EMAPPING;
    char *buf = NULL;
    long size;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, why_size, "%s", strerror(errno));
        goto cleanup;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        snprintf(why, why_size, "cannot read: %s", strerror(errno));
        goto cleanup;
    }
    if (size > MAX_SOURCE_BYTES) {
        snprintf(why, why_size, "larger than %ld bytes", MAX_SOURCE_BYTES);
        goto cleanup;
    }
    buf = malloc((size_t)size + 1);
    if (!buf) {
        snprintf(why, why_size, "out of memory");
        goto cleanup;
    }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        snprintf(why, why_size, "short read");
        goto cleanup;
    }
    buf[size] = '\0';
    *out = buf;
    *len = (size_t)size;
    buf = NULL;
    rc = 0;
cleanup:
    free(buf);
    if (f) {
        fclose(f);
    }
    return rc;
}

/*
 * [-0, +1, m] a private environment whose misses fall back to the sandbox
 * globals, so that a script's globals never leak into another script. _G is
 * the environment itself: `_G.x = 1` is then what `x = 1` is, instead of a
 * write into the globals every script falls back to.
 */
static void push_private_env(lua_State *L)
{
    lua_newtable(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &env_mt_key);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "_G");
}

/*
 * [-0, +1, e] loads a text chunk from `path` with chunkname "@path" and a
 * private environment (push_private_env).
 */
static void load_chunk(lua_State *L, struct ferry_lua *fl, const char *path)
{
    char why[160];
    char *src = NULL;
    size_t len = 0;
    int status;
    lua_pushfstring(L, "@%s", path);
    if (read_source(path, &src, &len, why, sizeof(why)) < 0) {
        luaL_error(L, "%s: %s", path, why);
    }
    if (fl->cur_sha) {
        EVP_DigestUpdate(fl->cur_sha, src, len);
        EVP_DigestUpdate(fl->cur_sha, "", 1);
    }
    /* Mode "t": precompiled chunks can break the VM's invariants. */
    status = luaL_loadbufferx(L, src, len, lua_tostring(L, -1), "t");
    free(src);
    if (status != LUA_OK) {
        lua_error(L);
    }
    lua_remove(L, -2);
    push_private_env(L);
    if (!lua_setupvalue(L, -2, 1)) {
        lua_pop(L, 1);
    }
}

/* ---- sandbox replacements -------------------------------------------------- */

static bool module_name_ok(const char *name)
{
    bool seg_start = true;
    if (!*name || strlen(name) > 200) {
        return false;
    }
    for (const char *p = name; *p; p++) {
        if (*p == '.') {
            if (seg_start) {
                return false;
            }
            seg_start = true;
            continue;
        }
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_')) {
            return false;
        }
        seg_start = false;
    }
    return !seg_start;
}

/*
 * Read-only library tables. All mappings of a worker share one Lua state, so
 * they share the tables behind string, table, math, utf8, ferry and every
 * required module: one mapping (or one record that drives it) assigning
 * string.lower would change what every later job of every mapping computes.
 * Scripts get a proxy instead: an empty table whose metatable sends reads to
 * the real table and refuses writes. Not a frozen copy: __newindex only
 * fires for absent keys, so assigning an existing field of a copy would
 * succeed. __index is the table itself, not a function, so that a library
 * call costs the VM one more table lookup and no C call. The real tables are
 * reachable only from C and through the string metatable, which
 * __metatable hides. The protection is shallow: a table that a module
 * function returns is the caller's to change.
 */

/* [-0, +0, v] raises "file:line: cannot assign to <name>.<key>: ..." for the proxy at t. */
static int readonly_error(lua_State *L, int t, int key)
{
    const char *name = "a library";
    const char *k;
    if (lua_getmetatable(L, t) && lua_rawgetp(L, -1, &readonly_key) == LUA_TSTRING) {
        name = lua_tostring(L, -1);
    }
    if (lua_type(L, key) == LUA_TSTRING) {
        k = lua_pushfstring(L, ".%s", lua_tostring(L, key));
    } else if (lua_type(L, key) == LUA_TNUMBER) {
        lua_pushvalue(L, key);
        k = lua_pushfstring(L, "[%s]", lua_tostring(L, -1));
    } else {
        k = lua_pushfstring(L, "[%s]", luaL_typename(L, key));
    }
    push_lua_where(L, 1);
    lua_pushfstring(L,
                    "cannot assign to %s%s: libraries are shared by all mappings and read-only "
                    "(use a local instead)",
                    name, k);
    lua_concat(L, 2);
    return lua_error(L);
}

static int l_readonly_newindex(lua_State *L)
{
    return readonly_error(L, 1, 2);
}

static int l_readonly_next(lua_State *L)
{
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 2);
    if (lua_next(L, -2)) {
        return 2;
    }
    lua_pushnil(L);
    return 1;
}

/* The real table must not become next's state argument, which the script could write to. */
static int l_readonly_pairs(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, l_readonly_next, 1);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* A module may be a list (of country codes, say): # must see the real one. */
static int l_readonly_len(lua_State *L)
{
    lua_pushinteger(L, luaL_len(L, lua_upvalueindex(1)));
    return 1;
}

/* [-0, +1, m] pushes a read-only proxy of the table at idx; errors call it `name`. */
static void push_readonly(lua_State *L, int idx, const char *name)
{
    idx = lua_absindex(L, idx);
    lua_newtable(L);
    lua_createtable(L, 0, 5);
    lua_pushvalue(L, idx);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_readonly_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, idx);
    lua_pushcclosure(L, l_readonly_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_pushvalue(L, idx);
    lua_pushcclosure(L, l_readonly_len, 1);
    lua_setfield(L, -2, "__len");
    /* getmetatable() would hand out __index, the real table. */
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pushstring(L, name);
    lua_rawsetp(L, -2, &readonly_key);
    lua_setmetatable(L, -2);
}

/* rawset(t, k, v) as in lbaselib.c, but it would write past a proxy's __newindex. */
static int l_rawset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    lua_settop(L, 3);
    if (lua_getmetatable(L, 1)) {
        if (lua_rawgetp(L, -1, &readonly_key) != LUA_TNIL) {
            return readonly_error(L, 1, 2);
        }
        lua_pop(L, 2);
    }
    ferry__lua_materialize(L, 1);
    lua_rawset(L, 1);
    return 1;
}

static int call_wrapped(lua_State *L);

/*
 * The raw functions below (and next, ferry__lua_next) see a table's own
 * contents, which a source record table does not have until it is
 * materialised (lua_json.h): they fill it first, so that next(record) and
 * rawget(record, k) answer as they would for the plain table.
 */
static int l_rawget(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    ferry__lua_materialize(L, 1);
    lua_rawget(L, 1);
    return 1;
}

static int l_rawlen(lua_State *L)
{
    int t = lua_type(L, 1);
    luaL_argexpected(L, t == LUA_TTABLE || t == LUA_TSTRING, 1, "table or string");
    ferry__lua_materialize(L, 1);
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, 1));
    return 1;
}

/* A record's object has no metatable to show, its array the array marker's. */
static int l_getmetatable(lua_State *L)
{
    luaL_checkany(L, 1);
    if (ferry__lua_is_lazy(L, 1)) {
        if (ferry__lua_is_array(L, 1)) {
            lua_pushliteral(L, "ferry.array");
        } else {
            lua_pushnil(L);
        }
        return 1;
    }
    return call_wrapped(L);
}

/*
 * require(name): only <lua_dir>/<name, dots as slashes>.lua, then
 * <mapping dir>/<same>.lua; text chunks only. The cache is per mapping set
 * so that a reload re-reads helpers too, and keyed by file path so that two
 * mappings' local modules of the same name stay apart.
 */
static int l_require(lua_State *L)
{
    struct ferry_lua *fl = get_host(L);
    const char *name = luaL_checkstring(L, 1);
    const char *dirs[2];
    char rel[256];
    int ndirs = 0;
    int cache;
    if (!module_name_ok(name)) {
        return luaL_error(L, "module '%s': invalid name (letters, digits, _ and dots only)", name);
    }
    snprintf(rel, sizeof(rel), "%s.lua", name);
    for (char *p = rel; *p; p++) {
        if (*p == '.' && strcmp(p, ".lua") != 0) {
            *p = '/';
        }
    }
    if (fl->lua_dir) {
        dirs[ndirs++] = fl->lua_dir;
    }
    if (fl->cur_dir) {
        dirs[ndirs++] = fl->cur_dir;
    }
    if (fl->cur_set_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, fl->cur_set_ref);
        lua_getfield(L, -1, "modules");
        lua_remove(L, -2);
    } else {
        lua_rawgeti(L, LUA_REGISTRYINDEX, fl->global_cache_ref);
    }
    cache = lua_gettop(L);
    for (int i = 0; i < ndirs; i++) {
        const char *path = lua_pushfstring(L, "%s/%s", dirs[i], rel);
        int t = lua_getfield(L, cache, path);
        if (t == LUA_TLIGHTUSERDATA) {
            return luaL_error(L, "module '%s' is required in a loop", name);
        }
        if (t != LUA_TNIL) {
            return 1;
        }
        lua_pop(L, 1);
        if (!is_file(path)) {
            lua_pop(L, 1);
            continue;
        }
        /* A marker while it loads, so that a cycle errors instead of recursing. */
        lua_pushlightuserdata(L, (void *)&env_mt_key);
        lua_setfield(L, cache, path);
        load_chunk(L, fl, path);
        lua_pushstring(L, name);
        lua_call(L, 1, 1);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushboolean(L, 1);
        } else if (lua_istable(L, -1)) {
            /* Every mapping of the set that requires it gets this one table. */
            push_readonly(L, -1, name);
            lua_remove(L, -2);
        }
        lua_pushvalue(L, -1);
        lua_setfield(L, cache, path);
        return 1;
    }
    return luaL_error(L, "module '%s' not found in %s%s%s", name, ndirs > 0 ? dirs[0] : "(none)",
                      ndirs > 1 ? " or " : "", ndirs > 1 ? dirs[1] : "");
}

/*
 * Runs the library C function a wrapper replaces (its upvalue 1) on the
 * wrapper's own stack frame instead of through lua_call: its errors then
 * name the script's file:line (luaL_error looks one frame up, which would be
 * the wrapper) and its argument errors the function the script called.
 * Only for the C functions of the standard libraries, which use no upvalues.
 */
static int call_wrapped(lua_State *L)
{
    lua_CFunction fn = lua_tocfunction(L, lua_upvalueindex(1));
    return fn(L);
}

/* [-0, +1, m] the _ENV of the Lua function calling the running C function, or a new private one. */
static void push_caller_env(lua_State *L)
{
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "f", &ar)) {
        int fn = lua_gettop(L);
        for (int i = 1;; i++) {
            const char *name = lua_getupvalue(L, fn, i);
            if (!name) {
                break;
            }
            if (strcmp(name, "_ENV") == 0) {
                lua_remove(L, fn);
                return;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    push_private_env(L);
}

/*
 * load(chunk [, name [, mode [, env]]]) with the mode forced to text. Without
 * env, Lua would give the chunk the state's global table, the one every
 * script falls back to, so that a loaded `x = 1` would reach all mappings:
 * it gets the caller's environment instead, as if its text were inline.
 */
static int l_load(lua_State *L)
{
    int n = lua_gettop(L);
    lua_settop(L, 4);
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    if (n < 4) {
        push_caller_env(L);
        lua_replace(L, 4);
    }
    return call_wrapped(L);
}

/*
 * Finalizers run with hooks off (lgc.c GCTM), so the time limit's stop hook
 * could not end a looping __gc: refuse them. An object is only marked for
 * finalization when its metatable has __gc at setmetatable time.
 */
static int l_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL) {
            return luaL_error(L, "__gc metamethods are not allowed in mappings");
        }
        lua_pop(L, 1);
    }
    ferry__lua_materialize(L, 1);
    return call_wrapped(L);
}

/* pcall must not swallow the time limit error, or a loop around pcall runs forever. */
static int l_pcall(lua_State *L)
{
    struct ferry_lua *fl = get_host(L);
    int status;
    luaL_checkany(L, 1);
    status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    if (fl->limit_hit) {
        return lua_error(L);
    }
    luaL_checkstack(L, 1, "too many results");
    if (status == LUA_OK) {
        lua_pushboolean(L, 1);
        lua_insert(L, 1);
        return lua_gettop(L);
    }
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
}

/*
 * The time limit's error is raised inside the stop hook, and Lua runs the
 * message handler before it unwinds, with hooks still off: a handler that
 * loops would never be stopped. It is not called for that error.
 */
static int l_xpcall_handler(lua_State *L)
{
    if (get_host(L)->limit_hit) {
        lua_settop(L, 1);
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int l_xpcall(lua_State *L)
{
    struct ferry_lua *fl = get_host(L);
    int n = lua_gettop(L);
    int status;
    luaL_checktype(L, 2, LUA_TFUNCTION);
    /* [f, msgh, args...] -> [handler, f, args...] */
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, l_xpcall_handler, 1);
    lua_replace(L, 1);
    lua_replace(L, 2);
    status = lua_pcall(L, n - 2, LUA_MULTRET, 1);
    if (fl->limit_hit) {
        return lua_error(L);
    }
    luaL_checkstack(L, 1, "too many results");
    if (status == LUA_OK) {
        lua_pushboolean(L, 1);
        lua_replace(L, 1);
        return lua_gettop(L);
    }
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
}

/*
 * Pattern matching runs in C, where the stop hook cannot interrupt it, and
 * backtracking over q quantifiers costs up to about n^q / q! steps on an
 * n-byte subject (("a*"):rep(12) .. "b" on 40 bytes runs for hours). Refuse
 * calls whose bound exceeds what a few seconds of matching can do; ordinary
 * patterns on field-sized strings stay far below it.
 */
#define PATTERN_COST_MAX 1e9

static int pattern_quantifiers(const char *p, size_t len)
{
    int q = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '%') {
            i++;
            if (i < len && p[i] == 'b') {
                i += 2;
            } else if (i < len && p[i] == 'f') {
                i++;
                if (i < len && p[i] == '[') {
                    goto set;
                }
            }
            continue;
        }
        if (p[i] == '[') {
set:
            i++;
            if (i < len && p[i] == '^') {
                i++;
            }
            /* A ']' right after '[' or '[^' is a literal member. */
            if (i < len && p[i] == ']') {
                i++;
            }
            while (i < len && p[i] != ']') {
                if (p[i] == '%') {
                    i++;
                }
                i++;
            }
            continue;
        }
        if (p[i] == '*' || p[i] == '+' || p[i] == '-') {
            q++;
        }
    }
    return q;
}

static int l_pattern_guard(lua_State *L)
{
    size_t n = 0;
    size_t plen = 0;
    const char *p;
    int plain_find = lua_toboolean(L, lua_upvalueindex(2)) && lua_toboolean(L, 4);
    if (!plain_find && lua_type(L, 1) == LUA_TSTRING && lua_type(L, 2) == LUA_TSTRING) {
        int q;
        double cost = 1.0;
        lua_tolstring(L, 1, &n);
        p = lua_tolstring(L, 2, &plen);
        q = pattern_quantifiers(p, plen);
        for (int k = 1; k <= q; k++) {
            cost = cost * (double)(n + 1) / (double)k;
        }
        if (q >= 2 && cost > PATTERN_COST_MAX) {
            return luaL_error(L,
                              "pattern with %d repetitions is too costly on a %d-byte string "
                              "(simplify the pattern or shorten the string)",
                              q, (int)(n > 0x7fffffff ? 0x7fffffff : n));
        }
    }
    return call_wrapped(L);
}

static void guard_pattern_fn(lua_State *L, const char *name)
{
    lua_getglobal(L, "string");
    lua_getfield(L, -1, name);
    lua_pushboolean(L, strcmp(name, "find") == 0);
    lua_pushcclosure(L, l_pattern_guard, 2);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

/* print() goes to the log: stdout belongs to the tools' JSON output. */
static int l_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1) {
            luaL_addchar(&b, '\t');
        }
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    ferry_info("lua: %.1000s", lua_tostring(L, -1));
    return 0;
}

/*
 * type(v) as in lbaselib.c, with the names as upvalues: the library's
 * version looks each name up as a C string (luaS_new) on every call, and
 * mappings and helpers call type() for nearly every value they touch.
 */
static int l_type(lua_State *L)
{
    int t = lua_type(L, 1);
    luaL_argcheck(L, t != LUA_TNONE, 1, "value expected");
    lua_pushvalue(L, lua_upvalueindex(t + 1));
    return 1;
}

static void register_type(lua_State *L)
{
    for (int t = 0; t < LUA_NUMTYPES; t++) {
        lua_pushstring(L, lua_typename(L, t));
    }
    lua_pushcclosure(L, l_type, LUA_NUMTYPES);
    lua_setglobal(L, "type");
}

static int l_ferry_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_newtable(L);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
        ferry__lua_materialize(L, 1);
    }
    ferry__lua_mark_array(L, -1);
    return 1;
}

static int l_ferry_is_array(lua_State *L)
{
    lua_pushboolean(L, ferry__lua_is_array(L, 1));
    return 1;
}

/*
 * ferry.get(record, path), which ferry.map offers as map.get: the value at a
 * dotted path, nil when a step is missing or the value is JSON null or "".
 * An all-digit step indexes an array (1-based), any other step is a key.
 * Mappings call it for most fields they read; in Lua it cost a function
 * call and a loop per read on top of the lookups themselves.
 */
static int l_ferry_get(lua_State *L)
{
    size_t len, at = 0, step_len;
    const char *path = luaL_checklstring(L, 2, &len);
    const char *step;
    bool is_index;
    uint64_t n;
    lua_settop(L, 2);
    lua_pushvalue(L, 1);
    while (ferry_path_step(path, len, &at, &step, &step_len, &is_index, &n)) {
        if (lua_type(L, 3) != LUA_TTABLE) {
            lua_pushnil(L);
            return 1;
        }
        if (is_index && ferry__lua_is_array(L, 3)) {
            lua_geti(L, 3, (lua_Integer)n);
        } else {
            lua_pushlstring(L, step, step_len);
            lua_gettable(L, 3);
        }
        lua_replace(L, 3);
    }
    if (ferry__lua_is_null(L, 3) || (lua_type(L, 3) == LUA_TSTRING && lua_rawlen(L, 3) == 0)) {
        lua_pushnil(L);
    }
    return 1;
}

/* ---- state ----------------------------------------------------------------- */

static void remove_global(lua_State *L, const char *table, const char *name)
{
    if (table) {
        if (lua_getglobal(L, table) == LUA_TTABLE) {
            lua_pushnil(L);
            lua_setfield(L, -2, name);
        }
        lua_pop(L, 1);
    } else {
        lua_pushnil(L);
        lua_setglobal(L, name);
    }
}

static void wrap_global(lua_State *L, const char *name, lua_CFunction fn)
{
    lua_getglobal(L, name);
    lua_pushcclosure(L, fn, 1);
    lua_setglobal(L, name);
}

/*
 * Swaps the library globals for read-only proxies (see push_readonly) and
 * hides the string metatable, whose __index is the real string table:
 * getmetatable("") returns a read-only copy whose __index is the proxy, so
 * code that reaches the library that way still reads it, and method calls
 * on strings still go straight to the real table.
 */
static void protect_libraries(lua_State *L)
{
    static const char *const libs[] = {LUA_STRLIBNAME, LUA_TABLIBNAME, LUA_MATHLIBNAME,
                                       LUA_UTF8LIBNAME, "ferry"};
    for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
        lua_getglobal(L, libs[i]);
        push_readonly(L, -1, libs[i]);
        lua_setglobal(L, libs[i]);
        lua_pop(L, 1);
    }
    lua_pushliteral(L, "");
    if (lua_getmetatable(L, -1)) {
        int mt = lua_gettop(L);
        lua_newtable(L);
        lua_pushnil(L);
        while (lua_next(L, mt) != 0) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, mt + 1);
        }
        lua_getglobal(L, LUA_STRLIBNAME);
        lua_setfield(L, mt + 1, "__index");
        push_readonly(L, mt + 1, "getmetatable(\"\")");
        lua_setfield(L, mt, "__metatable");
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    lua_register(L, "rawset", l_rawset);
    /* Each script's _G is its own environment (push_private_env). */
    remove_global(L, NULL, "_G");
}

static int protected_init(lua_State *L)
{
    struct ferry_lua *fl = lua_touserdata(L, 1);
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},       {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8}, {NULL, NULL},
    };
    for (const luaL_Reg *lib = libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    remove_global(L, NULL, "dofile");
    remove_global(L, NULL, "loadfile");
    remove_global(L, NULL, "collectgarbage");
    /* Binary chunks again, and it would only help probing the VM. */
    remove_global(L, "string", "dump");
    guard_pattern_fn(L, "find");
    guard_pattern_fn(L, "match");
    guard_pattern_fn(L, "gmatch");
    guard_pattern_fn(L, "gsub");
    wrap_global(L, "load", l_load);
    wrap_global(L, "setmetatable", l_setmetatable);
    wrap_global(L, "getmetatable", l_getmetatable);
    lua_register(L, "next", ferry__lua_next);
    lua_register(L, "rawget", l_rawget);
    lua_register(L, "rawlen", l_rawlen);
    lua_register(L, "pcall", l_pcall);
    lua_register(L, "xpcall", l_xpcall);
    lua_register(L, "print", l_print);
    lua_register(L, "require", l_require);
    register_type(L);

    ferry__lua_json_open(L);
    lua_newtable(L);
    ferry__lua_push_null(L);
    lua_setfield(L, -2, "null");
    lua_pushcfunction(L, l_ferry_array);
    lua_setfield(L, -2, "array");
    lua_pushcfunction(L, l_ferry_is_array);
    lua_setfield(L, -2, "is_array");
    lua_pushcfunction(L, l_ferry_get);
    lua_setfield(L, -2, "get");
    lua_pushcfunction(L, ferry__lua_intent_head);
    lua_setfield(L, -2, "intent_head");
    lua_pushcfunction(L, ferry__lua_intent);
    lua_setfield(L, -2, "intent");
    ferry__lua_normal_register(L);
    ferry__lua_rows_register(L);
    lua_setglobal(L, "ferry");
    protect_libraries(L);

    /* Shared by every script's environment, so it must not be reachable either. */
    lua_newtable(L);
    lua_pushglobaltable(L);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &env_mt_key);

    lua_newtable(L);
    fl->global_cache_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    lua_pushcfunction(L, l_require);
    lua_pushliteral(L, "ferry.engine");
    lua_call(L, 1, 1);
    if (!lua_istable(L, -1)) {
        return luaL_error(L, "ferry.engine did not return a table");
    }
    fl->engine_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

int ferry_lua_new(struct ferry_lua **out, const char *lua_dir, const struct ferry_lua_limits *lim,
                  struct ferry_err *err)
{
    int rc = FERRY_ENOMEM;
    unsigned int dlen = 0;
    EVP_MD_CTX *sha = NULL;
    struct ferry_lua *fl = NULL;
    if (!out || !lua_dir) {
        rc = ferry_err_set(err, FERRY_EINVAL, "ferry_lua_new: missing argument");
        goto cleanup;
    }
    if (!is_dir(lua_dir)) {
        rc = ferry_err_set(err, FERRY_ECONFIG, "lua directory %s: not a directory", lua_dir);
        goto cleanup;
    }
    fl = calloc(1, sizeof(*fl));
    if (!fl) {
        ferry_err_set(err, rc, "out of memory");
        goto cleanup;
    }
    fl->mem_max = lim && lim->mem_max ? lim->mem_max : DEFAULT_MEM_MAX;
    fl->time_limit_ms = lim && lim->time_limit_ms > 0 ? lim->time_limit_ms : DEFAULT_TIME_LIMIT_MS;
    if (fl->time_limit_ms > MAX_TIME_LIMIT_MS) {
        fl->time_limit_ms = MAX_TIME_LIMIT_MS;
    }
    fl->engine_ref = LUA_NOREF;
    fl->global_cache_ref = LUA_NOREF;
    fl->cur_set_ref = LUA_NOREF;
    fl->lua_dir = strdup(lua_dir);
    sha = EVP_MD_CTX_new();
    if (!fl->lua_dir || !sha || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
        ferry_err_set(err, rc, "out of memory");
        goto cleanup;
    }
    fl->L = lua_newstate(on_alloc, fl);
    if (!fl->L) {
        ferry_err_set(err, rc, "cannot create a Lua state within %zu bytes", fl->mem_max);
        goto cleanup;
    }
    lua_atpanic(fl->L, on_panic);
    /* A record's tables and intents die young, while the compiled mappings and modules live as
     * long as the state: minor collections leave the old ones alone (-3 % instructions per
     * record against the incremental collector). */
    lua_gc(fl->L, LUA_GCGEN, 0, 0);
    rc = guard_add(fl, err);
    if (rc < 0) {
        goto cleanup;
    }
    call_begin(fl, "ferry.engine", NULL, LUA_NOREF, sha);
    rc = pcall_host(fl, protected_init, fl, 0, err);
    call_end(fl);
    if (rc < 0) {
        goto cleanup;
    }
    EVP_DigestFinal_ex(sha, fl->engine_digest, &dlen);
    *out = fl;
    fl = NULL;
    rc = 0;
cleanup:
    EVP_MD_CTX_free(sha);
    ferry_lua_free(fl);
    return rc;
}

void ferry_lua_free(struct ferry_lua *fl)
{
    if (!fl) {
        return;
    }
    for (struct ferry_mapping_set *s = fl->sets; s; s = s->next) {
        s->fl = NULL;
    }
    guard_remove(fl);
    if (fl->L) {
        lua_close(fl->L);
    }
    pool_destroy(fl);
    free(fl->lua_dir);
    free(fl);
}

/* ---- mapping sets ---------------------------------------------------------- */

static void mapping_clear(struct ferry_mapping *m)
{
    free(m->name);
    free(m->path);
    free(m->dir);
    free(m->system);
    free(m->object);
    for (size_t i = 0; i < m->nevents; i++) {
        free(m->events[i]);
    }
    free(m->events);
    free(m->target_system);
    free(m->target_object);
    for (size_t i = 0; i < m->nfields; i++) {
        free(m->fields[i]);
    }
    free(m->fields);
}

void ferry_mapping_set_free(struct ferry_mapping_set *set)
{
    if (!set) {
        return;
    }
    if (set->fl) {
        struct ferry_mapping_set **pp = &set->fl->sets;
        while (*pp && *pp != set) {
            pp = &(*pp)->next;
        }
        if (*pp) {
            *pp = set->next;
        }
        if (set->ref != LUA_NOREF && set->ref != LUA_REFNIL) {
            luaL_unref(set->fl->L, LUA_REGISTRYINDEX, set->ref);
        }
        for (size_t k = 0; k < SETTINGS_SLOTS; k++) {
            luaL_unref(set->fl->L, LUA_REGISTRYINDEX, set->settings[k].ref[0]);
            luaL_unref(set->fl->L, LUA_REGISTRYINDEX, set->settings[k].ref[1]);
        }
    }
    for (size_t i = 0; i < set->nmaps; i++) {
        mapping_clear(&set->maps[i]);
    }
    free(set->maps);
    free(set->targets_system);
    free(set->targets_object);
    json_decref(set->targets);
    for (size_t k = 0; k < SETTINGS_SLOTS; k++) {
        json_decref(set->settings[k].seen[0]);
        json_decref(set->settings[k].seen[1]);
    }
    free(set);
}

/* Where a mapping lives: a directory with mapping.lua, or a .lua file. */
static int resolve_mapping(const char *given, struct ferry_mapping *m, struct ferry_err *err)
{
    size_t len = strlen(given);
    if (len == 0 || len > MAX_PATH_BYTES) {
        return ferry_err_set(err, FERRY_EMAPPING, "mapping path is empty or too long");
    }
    while (len > 1 && given[len - 1] == '/') {
        len--;
    }
    if (is_dir(given)) {
        const char *base;
        m->dir = strndup(given, len);
        if (!m->dir) {
            return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
        }
        base = strrchr(m->dir, '/');
        m->name = strdup(base ? base + 1 : m->dir);
        m->path = path_join(m->dir, "mapping.lua");
    } else {
        const char *slash;
        const char *base;
        if (len < 5 || strcmp(given + len - 4, ".lua") != 0) {
            return ferry_err_set(err, FERRY_EMAPPING, "%s: not a mapping directory or a .lua file",
                                 given);
        }
        m->path = strndup(given, len);
        slash = strrchr(given, '/');
        base = slash ? slash + 1 : given;
        m->name = strndup(base, strlen(base) - 4);
        m->dir = slash ? strndup(given, (size_t)(slash - given)) : strdup(".");
    }
    if (!m->name || !m->path || !m->dir) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    if (!is_file(m->path)) {
        return ferry_err_set(err, FERRY_EMAPPING, "%s: %s", m->path, strerror(errno));
    }
    return 0;
}

struct load_args {
    struct ferry_mapping_set *set;
    size_t index;
};

static char *lua_strdup_field(lua_State *L, int idx, const char *key)
{
    char *s;
    lua_getfield(L, idx, key);
    s = strdup(luaL_checkstring(L, -1));
    lua_pop(L, 1);
    if (!s) {
        luaL_error(L, "out of memory");
    }
    return s;
}

static int protected_new_set(lua_State *L)
{
    struct ferry_mapping_set *set = lua_touserdata(L, 1);
    lua_createtable(L, 0, 2);
    lua_newtable(L);
    lua_setfield(L, -2, "mappings");
    lua_newtable(L);
    lua_setfield(L, -2, "modules");
    set->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static int protected_load_one(lua_State *L)
{
    struct load_args *a = lua_touserdata(L, 1);
    struct ferry_mapping_set *set = a->set;
    struct ferry_mapping *m = &set->maps[a->index];
    struct ferry_lua *fl = set->fl;
    int compiled;
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fl->engine_ref);
    lua_getfield(L, 1, "compile");
    load_chunk(L, fl, m->path);
    lua_call(L, 0, 1);
    lua_pushstring(L, m->name);
    lua_pushstring(L, m->path);
    lua_call(L, 3, 1);
    compiled = lua_gettop(L);
    luaL_checktype(L, compiled, LUA_TTABLE);

    lua_getfield(L, compiled, "source");
    m->system = lua_strdup_field(L, -1, "system");
    m->object = lua_strdup_field(L, -1, "object");
    if (lua_getfield(L, -1, "on") == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, -1);
        m->events = calloc((size_t)n + 1, sizeof(*m->events));
        if (!m->events) {
            return luaL_error(L, "out of memory");
        }
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            m->events[m->nevents] = strdup(luaL_checkstring(L, -1));
            if (!m->events[m->nevents]) {
                return luaL_error(L, "out of memory");
            }
            m->nevents++;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 2);

    lua_getfield(L, compiled, "target");
    m->target_system = lua_strdup_field(L, -1, "system");
    m->target_object = lua_strdup_field(L, -1, "object");
    lua_pop(L, 1);
    if (lua_getfield(L, compiled, "fields") == LUA_TTABLE) {
        size_t n = 0;
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            n++;
            lua_pop(L, 1);
        }
        m->fields = calloc(n + 1, sizeof(*m->fields));
        if (!m->fields) {
            return luaL_error(L, "out of memory");
        }
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            if (lua_type(L, -2) == LUA_TSTRING && m->nfields < n) {
                m->fields[m->nfields] = strdup(lua_tostring(L, -2));
                if (!m->fields[m->nfields]) {
                    return luaL_error(L, "out of memory");
                }
                m->nfields++;
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);

    lua_rawgeti(L, LUA_REGISTRYINDEX, set->ref);
    lua_getfield(L, -1, "mappings");
    lua_pushvalue(L, compiled);
    lua_rawseti(L, -2, (lua_Integer)a->index + 1);
    return 0;
}

int ferry_mapping_set_load(struct ferry_lua *fl, const char *const *paths, size_t npaths,
                           struct ferry_mapping_set **out, struct ferry_err *err)
{
    int rc = FERRY_ENOMEM;
    EVP_MD_CTX *sha = NULL;
    unsigned char digest[32];
    unsigned int dlen = 0;
    struct ferry_mapping_set *set = NULL;
    if (!fl || !out || (npaths > 0 && !paths)) {
        rc = ferry_err_set(err, FERRY_EINVAL, "ferry_mapping_set_load: missing argument");
        goto cleanup;
    }
    set = calloc(1, sizeof(*set));
    sha = EVP_MD_CTX_new();
    if (!set || !sha || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
        ferry_err_set(err, rc, "out of memory");
        goto cleanup;
    }
    set->ref = LUA_NOREF;
    for (size_t k = 0; k < SETTINGS_SLOTS; k++) {
        set->settings[k].ref[0] = set->settings[k].ref[1] = LUA_NOREF;
    }
    set->settings_cur = &set->settings[0];
    set->fl = fl;
    set->next = fl->sets;
    fl->sets = set;
    set->maps = calloc(npaths ? npaths : 1, sizeof(*set->maps));
    if (!set->maps) {
        ferry_err_set(err, rc, "out of memory");
        goto cleanup;
    }
    set->nmaps = npaths;
    /* The engine decides what a mapping means, so it is part of "which rules". */
    EVP_DigestUpdate(sha, fl->engine_digest, sizeof(fl->engine_digest));

    call_begin(fl, "mapping set", NULL, LUA_NOREF, NULL);
    rc = pcall_host(fl, protected_new_set, set, 0, err);
    call_end(fl);
    if (rc < 0) {
        goto cleanup;
    }
    for (size_t i = 0; i < npaths; i++) {
        struct ferry_mapping *m = &set->maps[i];
        struct load_args a = {set, i};
        rc = resolve_mapping(paths[i], m, err);
        if (rc < 0) {
            goto cleanup;
        }
        EVP_DigestUpdate(sha, m->name, strlen(m->name) + 1);
        call_begin(fl, m->path, m->dir, set->ref, sha);
        rc = pcall_host(fl, protected_load_one, &a, 0, err);
        call_end(fl);
        if (rc < 0) {
            goto cleanup;
        }
    }
    if (EVP_DigestFinal_ex(sha, digest, &dlen) != 1) {
        rc = ferry_err_set(err, FERRY_ENOMEM, "sha256 failed");
        goto cleanup;
    }
    for (unsigned int i = 0; i < dlen && i < 32; i++) {
        snprintf(set->hash + 2 * i, 3, "%02x", digest[i]);
    }
    *out = set;
    set = NULL;
    rc = 0;
cleanup:
    EVP_MD_CTX_free(sha);
    ferry_mapping_set_free(set);
    return rc;
}

const char *ferry_mapping_set_hash(const struct ferry_mapping_set *set)
{
    return set ? set->hash : "";
}

static bool mapping_reacts(const struct ferry_mapping *m, const char *event)
{
    if (!m->events) {
        return true;
    }
    for (size_t i = 0; i < m->nevents; i++) {
        if (event && strcmp(m->events[i], event) == 0) {
            return true;
        }
    }
    return false;
}

bool ferry_mapping_set_reacts(const struct ferry_mapping_set *set, const char *system,
                              const char *object, const char *event)
{
    if (!set || !system || !object) {
        return false;
    }
    for (size_t i = 0; i < set->nmaps; i++) {
        const struct ferry_mapping *m = &set->maps[i];
        if (strcmp(m->system, system) == 0 && strcmp(m->object, object) == 0 &&
            mapping_reacts(m, event)) {
            return true;
        }
    }
    return false;
}

bool ferry_mapping_set_reads(const struct ferry_mapping_set *set, const char *system,
                             const char *object)
{
    for (size_t i = 0; set && system && object && i < set->nmaps; i++) {
        if (strcmp(set->maps[i].system, system) == 0 && strcmp(set->maps[i].object, object) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * Besides "system" and "object", each element carries "events": the union of
 * the `on` lists of the mappings for that pair, in load order (which events
 * to subscribe to; the first is the default of `ferry map test`). It is
 * absent when one of those mappings has no `on` list, i.e. takes every event.
 */
json_t *ferry_mapping_set_sources(const struct ferry_mapping_set *set)
{
    json_t *out = json_array();
    if (!out || !set) {
        return out;
    }
    for (size_t i = 0; i < set->nmaps; i++) {
        const struct ferry_mapping *m = &set->maps[i];
        json_t *entry = NULL;
        json_t *events;
        size_t k;
        json_t *e;
        json_array_foreach(out, k, e)
        {
            if (strcmp(json_string_value(json_object_get(e, "system")), m->system) == 0 &&
                strcmp(json_string_value(json_object_get(e, "object")), m->object) == 0) {
                entry = e;
                break;
            }
        }
        if (!entry) {
            entry =
                json_pack("{s:s, s:s, s:[]}", "system", m->system, "object", m->object, "events");
            if (!entry || json_array_append_new(out, entry) < 0) {
                json_decref(out);
                return NULL;
            }
        }
        events = json_object_get(entry, "events");
        if (!m->events) {
            json_object_set_new(entry, "every_event", json_true());
        }
        for (size_t j = 0; j < m->nevents; j++) {
            bool seen = false;
            size_t x;
            json_t *ev;
            json_array_foreach(events, x, ev)
            {
                if (strcmp(json_string_value(ev), m->events[j]) == 0) {
                    seen = true;
                }
            }
            if (!seen) {
                json_array_append_new(events, json_string(m->events[j]));
            }
        }
    }
    {
        size_t k;
        json_t *e;
        json_array_foreach(out, k, e)
        {
            if (json_object_get(e, "every_event")) {
                json_object_del(e, "every_event");
                json_object_del(e, "events");
            }
        }
    }
    return out;
}

struct run_args {
    struct ferry_mapping_set *set;
    size_t index;
    const json_t *record;
    const json_t *context;
    const char *event;
};

/*
 * A mapping may derive what it needs from its settings once (its `prepare`,
 * docs/mappings.md): the engine calls it again when the number passed with
 * each run changes. Each pair of settings objects keeps its number while it
 * is among the last SETTINGS_SLOTS pairs seen, so that records whose
 * contexts carry different settings (a worker's jobs of two mappings with
 * settings of their own, `ferry map test` over fixtures) do not make each
 * other prepare again. The set holds the objects it saw, so that a new one
 * cannot arrive at a freed one's address and pass for it; and settings
 * objects are not changed once made (the configuration's, a fixture's), so
 * the same object means the same settings.
 */
static void settings_seen(struct ferry_mapping_set *set, const json_t *context)
{
    json_t *s0 = json_object_get(context, "settings");
    json_t *s1 = json_object_get(context, "mapping_settings");
    struct settings_slot *slot = set->settings_cur;
    set->settings_tick++;
    if (slot->gen == 0 || slot->seen[0] != s0 || slot->seen[1] != s1) {
        struct settings_slot *victim = NULL;
        slot = NULL;
        for (size_t k = 0; k < SETTINGS_SLOTS && !slot; k++) {
            struct settings_slot *c = &set->settings[k];
            if (c->gen != 0 && c->seen[0] == s0 && c->seen[1] == s1) {
                slot = c;
            } else if (!victim || (victim->gen != 0 && (c->gen == 0 || c->used < victim->used))) {
                victim = c; /* a free slot, else the one unused longest */
            }
        }
        if (!slot) {
            slot = victim;
            for (int i = 0; i < 2; i++) {
                luaL_unref(set->fl->L, LUA_REGISTRYINDEX, slot->ref[i]);
                slot->ref[i] = LUA_NOREF;
                json_decref(slot->seen[i]);
            }
            slot->seen[0] = json_incref(s0);
            slot->seen[1] = json_incref(s1);
            slot->converted = false;
            slot->gen = ++set->settings_gens;
        }
        set->settings_cur = slot;
    }
    slot->used = set->settings_tick;
}

/*
 * [-0, +1, e] the context as Lua. Its settings objects are converted once
 * per settings generation and then shared by the runs, which only read them
 * (ctx.settings is read-only, docs/mappings.md): the daemon's context holds
 * the settings of every mapping, converted for each job before. The rest
 * (event, id, previous versions) is the job's own and converted each time.
 */
static void push_context(lua_State *L, struct ferry_mapping_set *set, const json_t *context)
{
    static const char *const keys[2] = {"settings", "mapping_settings"};
    const char *key;
    json_t *v;
    if (!json_is_object(context)) {
        lua_newtable(L);
        return;
    }
    struct settings_slot *slot = set->settings_cur;
    if (!slot->converted) {
        for (int i = 0; i < 2; i++) {
            if (slot->seen[i] && slot->ref[i] == LUA_NOREF) {
                ferry__lua_push_json(L, slot->seen[i]);
                slot->ref[i] = luaL_ref(L, LUA_REGISTRYINDEX);
            }
        }
        slot->converted = true;
    }
    /* Room for what the engine adds: mapping, settings, prepared, notes. */
    lua_createtable(L, 0, (int)json_object_size(context) + 4);
    json_object_foreach((json_t *)context, key, v)
    {
        int i = strcmp(key, keys[0]) == 0 ? 0 : strcmp(key, keys[1]) == 0 ? 1 : -1;
        if (i >= 0 && v == slot->seen[i] && slot->ref[i] != LUA_NOREF) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, slot->ref[i]);
        } else {
            ferry__lua_push_json(L, v);
        }
        /* A key with a NUL byte ends there, as ferry__lua_push_json has it. */
        lua_setfield(L, -2, key);
    }
}

/* [-0, +1, e] engine.run(mapping, record, ctx, event, settings_gen) */
static int protected_run(lua_State *L)
{
    struct run_args *a = lua_touserdata(L, 1);
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->set->fl->engine_ref);
    lua_getfield(L, 1, "run");
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->set->ref);
    lua_getfield(L, -1, "mappings");
    lua_rawgeti(L, -1, (lua_Integer)a->index + 1);
    lua_replace(L, 3);
    lua_settop(L, 3);
    ferry__lua_push_record(L, a->record);
    push_context(L, a->set, a->context);
    lua_pushstring(L, a->event);
    lua_pushinteger(L, a->set->settings_cur->gen);
    lua_call(L, 5, 1);
    return 1;
}

int ferry_mapping_set_run(struct ferry_mapping_set *set, const char *system, const char *object,
                          const char *event, const json_t *record, const json_t *context,
                          json_t **intents, struct ferry_err *err)
{
    int rc = FERRY_ENOMEM;
    json_t *out = NULL;
    json_t *batch = NULL;
    struct ferry_lua *fl;
    if (!set || !system || !object || !event || !record || !intents) {
        rc = ferry_err_set(err, FERRY_EINVAL, "ferry_mapping_set_run: missing argument");
        goto cleanup;
    }
    fl = set->fl;
    if (!fl) {
        rc = ferry_err_set(err, FERRY_EINVAL, "mapping set outlived its Lua state");
        goto cleanup;
    }
    out = json_array();
    if (!out) {
        ferry_err_set(err, rc, "out of memory");
        goto cleanup;
    }
    settings_seen(set, context);
    for (size_t i = 0; i < set->nmaps; i++) {
        const struct ferry_mapping *m = &set->maps[i];
        struct run_args a = {set, i, record, context, event};
        int top = lua_gettop(fl->L);
        if (strcmp(m->system, system) != 0 || strcmp(m->object, object) != 0 ||
            !mapping_reacts(m, event)) {
            continue;
        }
        call_begin(fl, m->path, m->dir, set->ref, NULL);
        rc = pcall_host(fl, protected_run, &a, 1, err);
        call_end(fl);
        if (rc < 0) {
            ferry__lua_records_release(fl->L);
            goto cleanup;
        }
        rc = ferry__lua_to_json_at(fl->L, -1, m->path, ": intents", &batch, err);
        /* After the conversion: an intent may hold a record table never read. */
        ferry__lua_records_release(fl->L);
        lua_settop(fl->L, top);
        if (rc < 0) {
            goto cleanup;
        }
        if (!json_is_array(batch)) {
            /* An empty Lua table converts to {}; no intents. */
            if (!json_is_object(batch) || json_object_size(batch) != 0) {
                rc = ferry_err_set(err, FERRY_EMAPPING, "%s: the engine returned no list", m->path);
                goto cleanup;
            }
        } else if (json_array_extend(out, batch) < 0) {
            rc = ferry_err_set(err, FERRY_ENOMEM, "out of memory");
            goto cleanup;
        }
        json_decref(batch);
        batch = NULL;
    }
    *intents = out;
    out = NULL;
    rc = 0;
cleanup:
    json_decref(batch);
    json_decref(out);
    return rc;
}

/*
 * The line of a mapping file that names field `name` as a key (`Name =` or
 * `["Name"] =`), found in the source text: Lua keeps no positions for table
 * keys, and an integrator wants to be sent to the line to change. 0: unknown.
 */
static int field_line(const char *text, const char *name)
{
    size_t nlen = strlen(name);
    int line = 1;
    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            line++;
            continue;
        }
        if (strncmp(p, name, nlen) != 0) {
            continue;
        }
        char before = p == text ? ' ' : p[-1];
        bool bare =
            before == ' ' || before == '\t' || before == '{' || before == ',' || before == '\n';
        bool quoted = (before == '"' || before == '\'') && p - text >= 2 && p[-2] == '[';
        const char *q = p + nlen;
        if (quoted) {
            q += (*q == before) ? 1 : 0;
            q += (*q == ']') ? 1 : 0;
        }
        while (*q == ' ' || *q == '\t') {
            q++;
        }
        if ((bare || quoted) && *q == '=' && q[1] != '=') {
            return line;
        }
    }
    return 0;
}

json_t *ferry_mapping_set_targets(const struct ferry_mapping_set *set)
{
    json_t *out = json_array();
    if (!out || !set) {
        return out;
    }
    for (size_t i = 0; i < set->nmaps; i++) {
        const struct ferry_mapping *m = &set->maps[i];
        char *text = NULL;
        size_t len = 0;
        char why[128];
        if (read_source(m->path, &text, &len, why, sizeof(why)) < 0) {
            text = NULL;
        }
        json_t *fields = json_object();
        for (size_t k = 0; fields && k < m->nfields; k++) {
            json_object_set_new(fields, m->fields[k],
                                json_integer(text ? field_line(text, m->fields[k]) : 0));
        }
        free(text);
        json_t *entry =
            json_pack("{s:s, s:s, s:s, s:s, s:o?}", "mapping", m->name, "path", m->path, "system",
                      m->target_system, "object", m->target_object, "fields", fields);
        if (!entry || json_array_append_new(out, entry) < 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

json_t *ferry_mapping_set_targets_of(struct ferry_mapping_set *set, const char *system,
                                     const char *object)
{
    json_t *out;
    char *sys_copy, *obj_copy;
    if (set && set->targets && strcmp(set->targets_system, system) == 0 &&
        strcmp(set->targets_object, object) == 0) {
        return json_incref(set->targets);
    }
    out = json_array();
    for (size_t i = 0; out && set && i < set->nmaps; i++) {
        const struct ferry_mapping *m = &set->maps[i];
        if (strcmp(m->system, system) != 0 || strcmp(m->object, object) != 0) {
            continue;
        }
        json_array_append_new(
            out, json_pack("{s:s, s:s}", "system", m->target_system, "object", m->target_object));
    }
    sys_copy = strdup(system);
    obj_copy = strdup(object);
    if (!set || !out || !sys_copy || !obj_copy) {
        /* Not kept, still answered. */
        free(sys_copy);
        free(obj_copy);
        return out;
    }
    free(set->targets_system);
    free(set->targets_object);
    json_decref(set->targets);
    set->targets_system = sys_copy;
    set->targets_object = obj_copy;
    set->targets = json_incref(out);
    return out;
}
