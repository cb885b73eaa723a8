/* SPDX-License-Identifier: MIT */
/*
 * Job execution and delta polling (see pipeline.h). The order of decisions
 * in apply_upsert is the product's promise to integrators: a record we have
 * linked before is updated in place; a record we have not linked is looked
 * up by the mapping's rules before anything is created; nothing is written
 * when nothing the source owns has changed.
 */
#include "pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "redact.h"
#include "util.h"

#define LEASE_MS (10 * 60 * 1000)

/* Attempts a job gets when the target's version keeps moving (see outcome_from_error). */
#define CONFLICT_ATTEMPTS 3
/* How a retried conflict's error says which conflicting attempt it was. */
#define CONFLICT_TAG " (conflicting attempt "

/* In the message of a conflict that a mapping's policy parks: never retried. */
static const char park_mark[] = "the policy is to park";

void ferry_correlation_from(const char *key, char out[33])
{
    char hex[FERRY_SHA256_HEX_LEN + 1];
    ferry_sha256_hex(key, strlen(key), hex);
    memcpy(out, hex, 32);
    out[32] = '\0';
}

int64_t ferry_pipeline_backoff_ms(const struct ferry_config *cfg, int attempts, int64_t hint_ms,
                                  uint32_t jitter_seed)
{
    int64_t delay = cfg->retry_base_ms > 0 ? cfg->retry_base_ms : 1;
    for (int i = 1; i < attempts && delay < cfg->retry_max_ms; i++) {
        delay *= 2;
    }
    if (delay > cfg->retry_max_ms) {
        delay = cfg->retry_max_ms;
    }
    /* Jitter of up to +25% spreads retries of jobs that failed together,
     * so a recovering remote is not hit by all of them at the same instant. */
    uint32_t x = jitter_seed * 2654435761u;
    x ^= x >> 16;
    delay += (int64_t)((double)delay * 0.25 * (double)(x % 1000) / 1000.0);
    if (hint_ms > delay) {
        delay = hint_ms;
    }
    return delay;
}

/*
 * Whether `system` is the system of record of field k: the mapping's owner
 * table names it for the field, or for the whole object ("*").
 */
static bool field_owned_by(const json_t *owner, const char *k, const char *system)
{
    const char *who = json_string_value(json_object_get(owner, k));
    if (!who) {
        who = json_string_value(json_object_get(owner, "*"));
    }
    return who && strcmp(who, system) == 0;
}

/* Fields of `fields` whose value differs from `base` (absent counts as different). */
static json_t *changed_fields(const json_t *fields, const json_t *base, const json_t *owner,
                              const char *target)
{
    json_t *out = json_object();
    const char *k;
    json_t *v;
    if (!out) {
        return NULL;
    }
    json_object_foreach((json_t *)fields, k, v)
    {
        /* A field the target system owns is set on create only; afterwards
         * the CRM's users maintain it and the source never overwrites it. */
        if (field_owned_by(owner, k, target)) {
            continue;
        }
        json_t *old = base ? json_object_get(base, k) : NULL;
        if (!old || !json_equal(old, v)) {
            json_object_set(out, k, v);
        }
    }
    return out;
}

struct job_ctx {
    struct ferry_worker *w;
    const struct ferry_job *job;
    const char *src_system;
    const char *src_object;
    const char *src_id;
    bool dry; /* `ferry plan`: decide and read, write nothing (no links, no audit) */
    /* The source record's echo ledger rows that it still matches: fields
     * whose current value is what ferry itself wrote there. Owned; NULL: none. */
    json_t *echo;
    /* A batch's lookups answered in advance (prefetch_lookups); borrowed, may be NULL. */
    const json_t *lookup_cache;
    /* A job run alone, at its last intent: once that intent's write is
     * answered, no remote call follows, so its bookkeeping can go into the
     * job's end transaction (open_end_after_write). */
    bool end_after_write;
};

static void audit(struct job_ctx *jc, const char *connector, const char *step, const char *fmt, ...)
    FERRY_PRINTF(4, 5);

static void audit(struct job_ctx *jc, const char *connector, const char *step, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    if (jc->dry) {
        return;
    }
    va_start(ap, fmt);
    ferry_vfmt(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    ferry_worker_audit(jc->w, jc->job->id, jc->job->correlation_id, connector, step, detail);
}

static int do_write(struct job_ctx *jc, struct ferry_instance *inst, struct ferry_call *call,
                    int op, const char *object, const char *id, const char *etag,
                    const json_t *fields, json_t **result, int *writes, struct ferry_err *err)
{
    struct ferry_write w = {
        .op = op,
        .object = object,
        .id = id,
        .etag = etag,
        .fields = fields,
    };
    ferry_err_clear(err);
    int rc = inst->conn->write(inst->state, call, &w, result, err);
    (*writes)++;
    if (rc == 0 && (!*result || !json_is_string(json_object_get(*result, "id")))) {
        json_decref(*result);
        *result = NULL;
        rc = ferry_err_set(err, FERRY_EPLUGIN, "connector %s: write returned no id", inst->name);
    }
    (void)jc;
    return rc;
}

/* `fields_text`: the fields as ferry_json_canonical gives them. */
static int save_link(struct job_ctx *jc, const struct ferry_link_key *key, const char *dst_id,
                     const char *etag, const char *hash, const char *fields_text,
                     struct ferry_err *err)
{
    if (jc->dry) {
        return 0;
    }
    struct ferry_link link = {
        .dst_id = (char *)dst_id,
        .etag = (char *)etag,
        .content_hash = (char *)hash,
        .fields = (char *)fields_text,
    };
    return ferry_store_link_put(jc->w->store, key, &link, jc->w->rt->clock(), err);
}

/*
 * One upsert, decided before it is written, so that several jobs' writes can
 * go to the target in one batch (ferry_pipeline_run_batch) and each job is
 * finished from the batch's answer.
 */
struct plan {
    int op;           /* 0: nothing to write; else enum ferry_write_op */
    int idx;          /* target instance */
    const char *tsys; /* borrowed from the intent */
    const char *tobj;
    char *dst_id;         /* UPDATE target */
    char *etag;           /* UPDATE version to check */
    json_t *write;        /* what is sent */
    const json_t *fields; /* all mapped fields (stored with the link); borrowed */
    char *canon;          /* fields, canonical: what the hash is of and the link stores */
    char hash[FERRY_SHA256_HEX_LEN + 1];
    struct ferry_link_key key;
    const char *what; /* "created", "updated" for the audit */
    json_t *base;     /* what the fields were compared with (last sync or found record) */
    char how[96];     /* how the target record was found: "link", "lookup Email", "" */
    bool unchanged;   /* linked or matched, and nothing the source owns changed */
};

static void plan_clear(struct plan *p)
{
    free(p->dst_id);
    free(p->etag);
    free(p->canon);
    p->canon = NULL;
    json_decref(p->write);
    json_decref(p->base);
    p->dst_id = p->etag = NULL;
    p->write = NULL;
    p->base = NULL;
    p->op = 0;
}

/* Appends a name to a short comma-separated list for an audit line. */
static void list_add(char *buf, size_t cap, size_t *len, const char *name)
{
    if (*len < cap) {
        *len += (size_t)snprintf(buf + *len, cap - *len, "%s%s", *len ? ", " : "", name);
    }
}

/*
 * The echo ledger rows of a job's source record that the record matches:
 * fields whose value (as the record shows it) is one that ferry itself
 * wrote there recently. A row the record does not match is left out: someone
 * changed the field after ferry's write, and that change is real. NULL when
 * none.
 */
static json_t *echo_rows(struct ferry_worker *w, const char *system, const char *object,
                         const char *id, const json_t *record)
{
    json_t *rows = NULL, *out = NULL;
    struct ferry_err err = {0};
    size_t i;
    json_t *row;
    if (ferry_store_echo_get(w->store, system, object, id, w->rt->clock(), &rows, &err) < 0) {
        ferry_warn("echo ledger not read, so this change is treated as new: %s", err.msg);
        return NULL;
    }
    json_array_foreach(rows, i, row)
    {
        char h[FERRY_SHA256_HEX_LEN + 1];
        const json_t *v = json_object_get(record, json_string_value(json_object_get(row, "field")));
        const char *want = json_string_value(json_object_get(row, "hash"));
        if (v && want && ferry_json_hash(v, h) == 0 && strcmp(h, want) == 0) {
            if (!out) {
                out = json_array();
            }
            json_array_append(out, row);
        }
    }
    json_decref(rows);
    return out;
}

/*
 * Takes out of a planned write every value that ferry itself wrote into the
 * job's source record on behalf of the system this write goes to: sending
 * it would only return a value to where it came from, and, if that system
 * has changed it since, overwrite the newer value with the older one (the
 * ping-pong of two-way sync). Values are compared, not field names, because
 * the two systems name the field differently. Returns how many were taken.
 */
static size_t drop_echoes(struct job_ctx *jc, struct plan *p)
{
    char names[200] = "";
    size_t n = 0, len = 0;
    const char *k;
    json_t *v;
    void *tmp;
    if (!jc->echo || !p->write) {
        return 0;
    }
    json_object_foreach_safe(p->write, tmp, k, v)
    {
        char h[FERRY_SHA256_HEX_LEN + 1];
        size_t i;
        json_t *row;
        bool echo = false;
        if (ferry_json_hash(v, h) < 0) {
            continue;
        }
        json_array_foreach(jc->echo, i, row)
        {
            const char *origin = json_string_value(json_object_get(row, "origin"));
            const char *hash = json_string_value(json_object_get(row, "hash"));
            if (origin && hash && strcmp(origin, p->tsys) == 0 && strcmp(hash, h) == 0) {
                echo = true;
                break;
            }
        }
        if (!echo) {
            continue;
        }
        list_add(names, sizeof(names), &len, k);
        json_object_del(p->write, k);
        n++;
    }
    if (n > 0) {
        audit(jc, p->tsys, "echo",
              "%s %s: %.200s came from ferry's own write to %s %s; not sent back", p->tobj,
              p->dst_id ? p->dst_id : "(new)", names, jc->src_object, jc->src_id);
        ferry_metrics_echo_suppressed(p->tsys);
    }
    return n;
}

/*
 * Fields left as the target has them because it is their system of record,
 * where the source's value differs: the decision `ferry explain` shows.
 */
static void audit_owned(struct job_ctx *jc, const struct plan *p, const json_t *owner)
{
    char names[200] = "";
    size_t n = 0, len = 0;
    const char *k;
    json_t *v;
    if (!owner || json_object_size(owner) == 0) {
        return;
    }
    json_object_foreach((json_t *)p->fields, k, v)
    {
        const json_t *old = p->base ? json_object_get(p->base, k) : NULL;
        if (!field_owned_by(owner, k, p->tsys) || (old && json_equal(old, v))) {
            continue;
        }
        list_add(names, sizeof(names), &len, k);
        n++;
    }
    if (n > 0) {
        audit(jc, p->tsys, "owner", "%s %s: %.200s kept as %s has it (its system of record)",
              p->tobj, p->dst_id ? p->dst_id : "", names, p->tsys);
    }
}

/* After ferry wrote a record, remember each value, if a mapping reads that
 * record back (two-way sync): its change event is then recognised. */
static void record_echoes(struct job_ctx *jc, const struct plan *p, const char *id)
{
    struct ferry_worker *w = jc->w;
    if (jc->dry || !p->write || json_object_size(p->write) == 0 || !w->mappings) {
        return;
    }
    if (!ferry_mapping_set_reads(w->mappings, p->tsys, p->tobj)) {
        return;
    }
    int64_t now = w->rt->clock();
    const char *k;
    json_t *v;
    json_object_foreach(p->write, k, v)
    {
        char h[FERRY_SHA256_HEX_LEN + 1];
        struct ferry_err err = {0};
        if (ferry_json_hash(v, h) < 0 ||
            ferry_store_echo_put(w->store, p->tsys, p->tobj, id, k, h, jc->src_system, now,
                                 now + w->rt->cfg->echo_ttl_ms, &err) < 0) {
            ferry_warn("echo ledger row for %s %s %s not stored: %s", p->tobj, id, k,
                       err.msg[0] ? err.msg : "out of memory");
        }
    }
}

/* A time as mappings and targets give it: ms or s since the epoch, ISO 8601,
 * or the OData JSON form "/Date(<ms>)/". */
static bool parse_time(const json_t *v, int64_t *ms)
{
    if (json_is_integer(v)) {
        int64_t x = json_integer_value(v);
        *ms = x < 100000000000LL ? x * 1000 : x;
        return true;
    }
    const char *t = json_string_value(v);
    if (!t) {
        return false;
    }
    if (strncmp(t, "/Date(", 6) == 0) {
        char *end = NULL;
        long long x = strtoll(t + 6, &end, 10);
        if (end == t + 6) {
            return false;
        }
        *ms = (int64_t)x;
        return true;
    }
    return ferry_iso8601_parse(t, ms) == 0;
}

/* `{"<field>": value}` as redacted text, so that privacy rules by field name apply. */
static char *conflict_value(const char *field, const json_t *v)
{
    json_t *o = json_object();
    json_object_set(o, field, (json_t *)v);
    char *text = json_dumps(o, JSON_COMPACT);
    char *out = text ? ferry_redact_text(text) : NULL;
    free(text);
    json_decref(o);
    return out;
}

static void log_conflict(struct job_ctx *jc, const json_t *intent, const struct plan *p,
                         const char *k, const json_t *synced, const json_t *source,
                         const json_t *target, const char *policy, const char *resolution)
{
    char skey[512];
    struct ferry_err err = {0};
    ferry_fmt(skey, sizeof(skey), "%s:%s:%s", jc->src_system, jc->src_object, jc->src_id);
    char *sv = conflict_value(k, synced), *nv = conflict_value(k, source),
         *tv = conflict_value(k, target);
    struct ferry_conflict c = {
        .job_id = jc->job->id,
        .correlation_id = jc->job->correlation_id,
        .mapping = json_string_value(json_object_get(intent, "mapping")),
        .source_key = skey,
        .target_system = p->tsys,
        .target_object = p->tobj,
        .target_id = p->dst_id,
        .field = k,
        .synced_value = sv,
        .source_value = nv,
        .target_value = tv,
        .policy = policy,
        .resolution = resolution,
    };
    if (ferry_store_conflict_add(jc->w->store, &c, jc->w->rt->clock(), &err) < 0) {
        ferry_warn("conflict row not stored: %s", err.msg);
    }
    free(sv);
    free(nv);
    free(tv);
    audit(jc, p->tsys, "conflict", "%s %s: %s changed in both systems since the last sync; %s: %s",
          p->tobj, p->dst_id, k, policy, resolution);
    ferry_metrics_conflict(p->tsys);
}

/*
 * A linked record's fields that both systems changed since the last sync
 * (the target's value is neither what ferry last wrote nor the new one),
 * decided by the intent's conflict policy: "source" writes, "target" keeps
 * the target's value, "newer" compares the source record's change time with
 * the target's, "park" stops the job for a person. Each one gets a conflict
 * row. Costs one read of the target, so it runs only for mappings that name
 * a policy; without one the source wins unread, as before.
 */
static int resolve_conflicts(struct job_ctx *jc, const json_t *intent, struct plan *p,
                             struct ferry_instance *inst, struct ferry_call *call,
                             struct ferry_err *err)
{
    const json_t *conflict = json_object_get(intent, "conflict");
    json_t *cur = NULL;
    char parked[200] = "";
    size_t plen = 0;
    const char *k;
    json_t *v;
    void *tmp;
    if (!json_is_object(conflict) || jc->dry || !p->base || !inst->conn->fetch) {
        return 0;
    }
    ferry_err_clear(err);
    int rc = inst->conn->fetch(inst->state, call, p->tobj, p->dst_id, &cur, err);
    if (rc == FERRY_ENOTFOUND) {
        ferry_err_clear(err);
        return 0; /* the write finds out and matches again */
    }
    if (rc < 0) {
        return rc;
    }
    const char *policy_all = json_string_value(json_object_get(conflict, "policy"));
    const json_t *per_field = json_object_get(conflict, "fields");
    json_object_foreach_safe(p->write, tmp, k, v)
    {
        const json_t *old = json_object_get(p->base, k);
        const json_t *now = json_object_get(cur, k);
        if (!old || !now || json_equal(now, old) || json_equal(now, v)) {
            continue;
        }
        const char *policy = json_string_value(json_object_get(per_field, k));
        if (!policy) {
            policy = policy_all ? policy_all : "source";
        }
        const char *resolution = "source written";
        bool park = false, keep_target = false;
        if (strcmp(policy, "newer") == 0) {
            int64_t st = 0, tt = 0;
            const char *tfield = json_string_value(json_object_get(conflict, "target_time"));
            if (!parse_time(json_object_get(conflict, "source_time"), &st) || !tfield ||
                !parse_time(json_object_get(cur, tfield), &tt)) {
                park = true;
                resolution = "parked (a change time is missing)";
            } else if (st > tt) {
                resolution = "source written (newer)";
            } else {
                keep_target = true;
                resolution = "target kept (newer)";
            }
        } else if (strcmp(policy, "park") == 0) {
            park = true;
            resolution = "parked";
        } else if (strcmp(policy, "target") == 0) {
            keep_target = true;
            resolution = "target kept";
        }
        log_conflict(jc, intent, p, k, old, v, now, policy, resolution);
        if (park) {
            list_add(parked, sizeof(parked), &plen, k);
        }
        if (keep_target) {
            json_object_del(p->write, k);
        }
    }
    json_decref(cur);
    if (parked[0]) {
        return ferry_err_set(err, FERRY_ECONFLICT,
                             "%s %s: %.200s changed in both systems since the last sync and %s; "
                             "see `ferry conflicts`, then retry or drop",
                             p->tobj, p->dst_id, parked, park_mark);
    }
    return 0;
}

/* The key of one lookup answer in a batch's cache. */
static void lookup_cache_key(char *out, size_t n, int idx, const char *tobj, const char *field,
                             const char *value)
{
    ferry_fmt(out, n, "%d\x1f%s\x1f%s\x1f%s", idx, tobj, field, value);
}

/* Whether the batch already asked for this value: *found is then the answer (or NULL). */
static bool lookup_cached(const struct job_ctx *jc, int idx, const char *tobj, const char *field,
                          const char *value, json_t **found)
{
    char key[1024];
    if (!jc->lookup_cache) {
        return false;
    }
    lookup_cache_key(key, sizeof(key), idx, tobj, field, value);
    json_t *hit = json_object_get(jc->lookup_cache, key);
    if (!hit) {
        return false;
    }
    *found = json_is_null(hit) ? NULL : json_deep_copy(hit);
    return true;
}

/*
 * Match rule "linked": the target record another source record was synced
 * to, through the link table ({"rule": "linked", "object", "id", ["system"],
 * ["max_age_ms"]}); e.g. the task an abandoned cart made, found from the
 * order that followed it. A link older than max_age_ms (by its last write)
 * does not match: "closed if the buyer orders within N hours".
 */
static int match_linked(struct job_ctx *jc, const json_t *rule, const char *tsys, const char *tobj,
                        json_t **found, char *how, size_t hown, struct ferry_err *err)
{
    const char *sys = json_string_value(json_object_get(rule, "system"));
    const char *obj = json_string_value(json_object_get(rule, "object"));
    char *id = ferry_json_scalar_text(json_object_get(rule, "id"));
    json_int_t max_age = json_integer_value(json_object_get(rule, "max_age_ms"));
    struct ferry_link link = {0};
    int rc = 0;
    *found = NULL;
    if (!obj || !id || !*id) {
        free(id);
        return 0; /* nothing to look for: no match */
    }
    struct ferry_link_key key = {.src_system = sys ? sys : jc->src_system,
                                 .src_object = obj,
                                 .src_id = id,
                                 .dst_system = tsys,
                                 .dst_object = tobj};
    rc = ferry_store_link_get(jc->w->store, &key, &link, err);
    if (rc == FERRY_ENOTFOUND) {
        rc = 0;
    } else if (rc == 0 && link.dst_id && link.dst_id[0]) {
        int64_t age = jc->w->rt->clock() - link.updated_at_ms;
        if (max_age > 0 && age > max_age) {
            audit(jc, tsys, "match",
                  "%s %s (of %s %s) was written %lld s ago, more than %lld s: "
                  "not matched",
                  tobj, link.dst_id, obj, id, (long long)(age / 1000), (long long)(max_age / 1000));
        } else {
            json_t *fields = link.fields ? json_loads(link.fields, 0, NULL) : NULL;
            *found = json_pack("{s:s, s:s?, s:o}", "id", link.dst_id, "etag", link.etag, "record",
                               fields ? fields : json_object());
            ferry_fmt(how, hown, "link of %s %s", obj, id);
        }
    }
    ferry_link_clear(&link);
    free(id);
    return rc;
}

/*
 * Decide what an upsert intent needs: nothing (unchanged, or no field the
 * source owns changed), an update of the linked or matched record, or a
 * create. Lookups run here; nothing is written. `ignore_link`: the linked
 * record turned out to be gone, match again.
 */
static int plan_upsert(struct job_ctx *jc, const json_t *intent, bool ignore_link, struct plan *p,
                       struct ferry_err *err)
{
    struct ferry_runtime *rt = jc->w->rt;
    const json_t *target = json_object_get(intent, "target");
    const json_t *owner = json_object_get(intent, "owner");
    const char *mapping = json_string_value(json_object_get(intent, "mapping"));
    json_t *prev = NULL, *found = NULL;
    struct ferry_link link = {0};
    struct ferry_call call;
    int rc;

    memset(p, 0, sizeof(*p));
    p->tsys = json_string_value(json_object_get(target, "system"));
    p->tobj = json_string_value(json_object_get(target, "object"));
    p->fields = json_object_get(intent, "fields");
    if (!p->tsys || !p->tobj || !json_is_object(p->fields)) {
        return ferry_err_set(err, FERRY_EMAPPING, "mapping %s: intent without target or fields",
                             mapping ? mapping : "?");
    }
    p->idx = ferry_runtime_instance(rt, p->tsys);
    if (p->idx < 0) {
        return ferry_err_set(err, FERRY_ECONFIG,
                             "mapping %s targets connector '%s', which is not configured",
                             mapping ? mapping : "?", p->tsys);
    }
    struct ferry_instance *inst = &rt->instances[p->idx];
    if (!inst->conn->write) {
        return ferry_err_set(err, FERRY_EUNSUPPORTED, "connector %s cannot write", p->tsys);
    }
    ferry_call_init(&call, rt, jc->w, (size_t)p->idx, jc->job->correlation_id, jc->job->id);
    call.quiet = jc->dry;
    /* As ferry_json_hash, keeping the text for the link. */
    p->canon = ferry_json_canonical(p->fields);
    if (!p->canon) {
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    ferry_sha256_hex(p->canon, strlen(p->canon), p->hash);
    /* A rule's intent carries its own source id (record id + rule key), so
     * that each activity a record causes has a link of its own. */
    const char *sid = json_string_value(json_object_get(json_object_get(intent, "source"), "id"));
    p->key = (struct ferry_link_key){
        .src_system = jc->src_system,
        .src_object = jc->src_object,
        .src_id = sid ? sid : jc->src_id,
        .dst_system = p->tsys,
        .dst_object = p->tobj,
    };
    const char *tsys = p->tsys, *tobj = p->tobj;

    rc = ignore_link ? FERRY_ENOTFOUND : ferry_store_link_get(jc->w->store, &p->key, &link, err);
    if (rc < 0 && rc != FERRY_ENOTFOUND) {
        goto cleanup;
    }
    bool unknown_create = rc == 0 && link.dst_id && link.dst_id[0] == '\0';
    if (unknown_create) {
        /* An earlier create's outcome is unknown: it may exist already. The
         * match rules below must find it (or prove it absent) first. */
        audit(jc, tsys, "match", "%s: an earlier create's outcome is unknown; looking it up first",
              tobj);
        rc = FERRY_ENOTFOUND;
    }
    if (rc == 0) {
        ferry_fmt(p->how, sizeof(p->how), "link");
        p->dst_id = ferry_strdup(link.dst_id);
        prev = link.fields ? json_loads(link.fields, 0, NULL) : NULL;
        p->base = json_incref(prev);
        if (link.content_hash && strcmp(link.content_hash, p->hash) == 0) {
            audit(jc, tsys, "skip", "%s %s: unchanged since the last sync", tobj, link.dst_id);
            p->unchanged = true;
            goto cleanup;
        }
        p->write = changed_fields(p->fields, prev, owner, tsys);
        if (!p->write) {
            rc = ferry_err_set(err, FERRY_ENOMEM, "out of memory");
            goto cleanup;
        }
        audit_owned(jc, p, owner);
        size_t echoes = drop_echoes(jc, p);
        if (json_object_size(p->write) > 0) {
            rc = resolve_conflicts(jc, intent, p, inst, &call, err);
            if (rc < 0) {
                goto cleanup;
            }
        }
        if (json_object_size(p->write) == 0) {
            if (!echoes) {
                audit(jc, tsys, "skip", "%s %s: no change in fields the source owns", tobj,
                      link.dst_id);
            }
            rc = save_link(jc, &p->key, link.dst_id, link.etag, p->hash, p->canon, err);
            json_decref(p->write);
            p->write = NULL;
            p->unchanged = true;
            goto cleanup;
        }
        p->op = FERRY_WRITE_UPDATE;
        p->what = "updated";
        p->etag = ferry_strdup(link.etag);
        goto cleanup;
    }

    /* No link of its own: the record may be the far end of a link made the
     * other way (read back, a contact ferry created from a customer leads to
     * that customer). Only the intent for the record itself: a rule's
     * intents have source ids of their own. */
    const char *how = NULL;
    if (!unknown_create && !ignore_link && strcmp(p->key.src_id, jc->src_id) == 0 &&
        inst->conn->fetch) {
        char *other = NULL;
        rc = ferry_store_link_find_by_dst(jc->w->store, jc->src_system, jc->src_object, jc->src_id,
                                          tsys, tobj, &other, err);
        if (rc < 0 && rc != FERRY_ENOTFOUND) {
            goto cleanup;
        }
        if (rc == 0 && other && other[0]) {
            json_t *rec = NULL;
            ferry_err_clear(err);
            rc = inst->conn->fetch(inst->state, &call, tobj, other, &rec, err);
            if (rc == 0) {
                found = json_pack("{s:s, s:n, s:o}", "id", other, "etag", "record", rec);
                how = "reverse link";
            } else if (rc != FERRY_ENOTFOUND) {
                free(other);
                goto cleanup;
            }
        }
        free(other);
        ferry_err_clear(err);
    }

    /* Then the mapping's match rules, in order. */
    size_t i;
    const json_t *rule;
    int lookups = 0;
    char how_buf[80];
    rc = 0;
    json_array_foreach(json_object_get(intent, "match"), i, rule)
    {
        const char *kind = json_string_value(json_object_get(rule, "rule"));
        const char *field = json_string_value(json_object_get(rule, "field"));
        const char *value = json_string_value(json_object_get(rule, "value"));
        if (found) {
            break;
        }
        if (kind && strcmp(kind, "linked") == 0) {
            rc = match_linked(jc, rule, tsys, tobj, &found, how_buf, sizeof(how_buf), err);
            if (rc < 0) {
                goto cleanup;
            }
            how = how_buf;
            continue;
        }
        if (!kind || strcmp(kind, "lookup") != 0 || !field || !value || !*value) {
            continue;
        }
        if (!inst->conn->lookup) {
            rc =
                ferry_err_set(err, FERRY_EUNSUPPORTED, "connector %s cannot look records up", tsys);
            goto cleanup;
        }
        ferry_err_clear(err);
        const json_t *where = json_object_get(rule, "where");
        if (json_is_object(where) && json_object_size(where) > 0) {
            /* Conditions besides the field (e.g. only open opportunities). */
            if (!FERRY_CONNECTOR_HAS(inst->conn, lookup_where) || !inst->conn->lookup_where) {
                rc = ferry_err_set(err, FERRY_EUNSUPPORTED,
                                   "connector %s cannot look up by several conditions", tsys);
                goto cleanup;
            }
            json_t *all = json_deep_copy(where);
            json_object_set_new(all, field, json_string(value));
            rc = inst->conn->lookup_where(inst->state, &call, tobj, all, &found, err);
            json_decref(all);
        } else if (!lookup_cached(jc, p->idx, tobj, field, value, &found)) {
            rc = inst->conn->lookup(inst->state, &call, tobj, field, value, &found, err);
        }
        if (rc < 0) {
            goto cleanup;
        }
        lookups++;
        ferry_fmt(how_buf, sizeof(how_buf), "lookup %s", field);
        how = how_buf;
    }
    if (found) {
        const char *id = json_string_value(json_object_get(found, "id"));
        const char *etag = json_string_value(json_object_get(found, "etag"));
        if (!json_is_object(json_object_get(found, "record"))) {
            json_object_set_new(found, "record", json_object());
        }
        if (!id) {
            rc = ferry_err_set(err, FERRY_EPLUGIN, "connector %s: lookup returned no id", tsys);
            goto cleanup;
        }
        p->write = changed_fields(p->fields, json_object_get(found, "record"), owner, tsys);
        if (!p->write) {
            rc = ferry_err_set(err, FERRY_ENOMEM, "out of memory");
            goto cleanup;
        }
        audit(jc, tsys, "match", "%s %s: matched by %s", tobj, id,
              strncmp(how, "lookup ", 7) == 0 ? how + 7 : how);
        ferry_fmt(p->how, sizeof(p->how), "%s", how);
        p->dst_id = ferry_strdup(id);
        p->base = json_incref(json_object_get(found, "record"));
        audit_owned(jc, p, owner);
        drop_echoes(jc, p);
        if (json_object_size(p->write) == 0) {
            rc = save_link(jc, &p->key, id, etag, p->hash, p->canon, err);
            json_decref(p->write);
            p->write = NULL;
            p->unchanged = true;
            goto cleanup;
        }
        p->op = FERRY_WRITE_UPDATE;
        p->what = "updated";
        p->etag = ferry_strdup(etag);
        goto cleanup;
    }

    if (unknown_create && lookups == 0) {
        rc = ferry_err_set(err, FERRY_EDUPLICATE,
                           "%s: an earlier create may have succeeded (its outcome is unknown) and "
                           "the mapping has no lookup rule to find it; check the target, then "
                           "retry or drop this job",
                           tobj);
        goto cleanup;
    }
    p->op = FERRY_WRITE_CREATE;
    p->what = "created";
    p->write = json_deep_copy(p->fields);
    if (!p->write) {
        rc = ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }

cleanup:
    json_decref(prev);
    json_decref(found);
    ferry_link_clear(&link);
    if (rc < 0) {
        plan_clear(p);
    }
    return rc;
}

/* After the write of a plan: the link, the audit, or the unknown-outcome marker. */
static int finish_plan(struct job_ctx *jc, struct plan *p, int rc, const json_t *result,
                       struct ferry_err *err)
{
    if (rc == FERRY_EUNKNOWN_OUTCOME && p->op == FERRY_WRITE_CREATE) {
        /* Remember that a create may have happened, so that no retry posts
         * again before the match rules have looked for it. */
        struct ferry_err merr = {0};
        if (save_link(jc, &p->key, "", NULL, "unknown-outcome", p->canon, &merr) < 0) {
            ferry_error("create outcome marker not stored: %s", merr.msg);
        }
        audit(jc, p->tsys, "write", "%s: create sent, outcome unknown: %s", p->tobj, err->msg);
        return rc;
    }
    if (rc < 0) {
        return rc;
    }
    const char *id = json_string_value(json_object_get(result, "id"));
    const char *etag = json_string_value(json_object_get(result, "etag"));
    if (!id) {
        return ferry_err_set(err, FERRY_EPLUGIN, "connector %s: write returned no id", p->tsys);
    }
    if (p->op == FERRY_WRITE_UPDATE) {
        audit(jc, p->tsys, "write", "%s %s: updated %zu field(s)", p->tobj, id,
              json_object_size(p->write));
    } else {
        audit(jc, p->tsys, "write", "%s %s: created", p->tobj, id);
    }
    record_echoes(jc, p, id);
    return save_link(jc, &p->key, id, etag, p->hash, p->canon, err);
}

/*
 * After the last remote call of a job that runs alone: opens the job's end
 * transaction early, so that the write's link and ledger rows share its
 * commit (ferry_pipeline_run_job ends it). A refused write may still lead
 * to the intent's "instead", which calls the target again: not then.
 */
static void open_end_after_write(struct job_ctx *jc, int rc)
{
    struct ferry_err err = {0};
    if (!jc->end_after_write || jc->dry || (rc < 0 && rc != FERRY_EUNKNOWN_OUTCOME) ||
        ferry_store_in_transaction(jc->w->store)) {
        return;
    }
    if (ferry_store_begin(jc->w->store, &err) < 0) {
        ferry_warn("write recorded without a transaction: %s", err.msg);
    }
}

/* Write a plan one by one, then finish it; takes the plan (cleared on return). */
static int write_plan(struct job_ctx *jc, const json_t *intent, struct plan *pp, int *writes,
                      struct ferry_err *err)
{
    struct plan p = *pp;
    json_t *result = NULL;
    int rc;
    memset(pp, 0, sizeof(*pp));
    struct ferry_instance *inst = &jc->w->rt->instances[p.idx];
    struct ferry_call call;
    ferry_call_init(&call, jc->w->rt, jc->w, (size_t)p.idx, jc->job->correlation_id, jc->job->id);
    rc = do_write(jc, inst, &call, p.op, p.tobj, p.dst_id, p.etag, p.write, &result, writes, err);
    if (rc == FERRY_ENOTFOUND && p.op == FERRY_WRITE_UPDATE) {
        /* Deleted or merged away in the target: find it again (or create it)
         * by the mapping's rules rather than failing forever. */
        audit(jc, p.tsys, "match", "%s %s: linked record is gone; matching again", p.tobj,
              p.dst_id);
        plan_clear(&p);
        rc = plan_upsert(jc, intent, true, &p, err);
        if (rc < 0 || p.op == 0) {
            plan_clear(&p);
            return rc;
        }
        rc = do_write(jc, inst, &call, p.op, p.tobj, p.dst_id, p.etag, p.write, &result, writes,
                      err);
    }
    open_end_after_write(jc, rc);
    rc = finish_plan(jc, &p, rc, result, err);
    json_decref(result);
    plan_clear(&p);
    return rc;
}

static int resolve_refs(struct job_ctx *jc, json_t *intent, struct ferry_err *err);
static int apply_upsert(struct job_ctx *jc, const json_t *intent, int *writes,
                        struct ferry_err *err);

/*
 * A write the target refused as not allowed (e.g. an opportunity in
 * approval, or a record of a role the technical user may not change) runs
 * the intent's "instead" (a task for a person) when the rule gave one; the
 * job then succeeds, and the refusal is in the audit. Other failures stand.
 */
static int apply_instead(struct job_ctx *jc, const json_t *intent, int rc, int *writes,
                         struct ferry_err *err)
{
    json_t *instead = json_object_get(intent, "instead");
    if (rc != FERRY_EFORBIDDEN || !json_is_object(instead)) {
        return rc;
    }
    const json_t *target = json_object_get(instead, "target");
    audit(jc, json_string_value(json_object_get(json_object_get(intent, "target"), "system")),
          "instead", "refused (%s); writing the rule's alternative to %s instead", err->msg,
          json_string_value(json_object_get(target, "object")));
    ferry_err_clear(err);
    rc = resolve_refs(jc, instead, err);
    if (rc == 0) {
        rc = apply_upsert(jc, instead, writes, err);
    }
    return rc;
}

static int apply_upsert(struct job_ctx *jc, const json_t *intent, int *writes,
                        struct ferry_err *err)
{
    struct plan p;
    int rc = plan_upsert(jc, intent, false, &p, err);
    if (rc < 0 || p.op == 0) {
        plan_clear(&p);
        return rc;
    }
    return apply_instead(jc, intent, write_plan(jc, intent, &p, writes, err), writes, err);
}

/*
 * An "update" intent changes a record the match rules find and never creates
 * one: "move the account's open opportunity" must not invent an opportunity.
 */
static int apply_update(struct job_ctx *jc, const json_t *intent, int *writes,
                        struct ferry_err *err)
{
    struct plan p;
    int rc = plan_upsert(jc, intent, false, &p, err);
    if (rc < 0 || p.op == 0) {
        plan_clear(&p);
        return rc;
    }
    if (p.op == FERRY_WRITE_CREATE) {
        const char *rule = json_string_value(json_object_get(intent, "rule"));
        audit(jc, p.tsys, "skip", "%s: no record to update%s%s%s", p.tobj, rule ? " (rule " : "",
              rule ? rule : "", rule ? ")" : "");
        plan_clear(&p);
        return 0;
    }
    return apply_instead(jc, intent, write_plan(jc, intent, &p, writes, err), writes, err);
}

/*
 * A "link" intent writes nothing: the target record its match rules find
 * becomes the counterpart of the source record this job's record was made
 * from (link_from, found through ferry's link to this record). E.g. a lead
 * converted in the CRM names its contact; the shop customer the lead came
 * from is linked to that contact, so the customer's next change updates it
 * instead of matching or creating another. An existing link of that record
 * is kept (and the disagreement audited): the link decides where data goes.
 */
static int apply_link(struct job_ctx *jc, const json_t *intent, struct ferry_err *err)
{
    const json_t *from = json_object_get(intent, "link_from");
    const char *fsys = json_string_value(json_object_get(from, "system"));
    const char *fobj = json_string_value(json_object_get(from, "object"));
    char *origin = NULL;
    struct ferry_link have = {0};
    struct plan p;
    int rc;
    if (!fsys || !fobj) {
        return ferry_err_set(err, FERRY_EMAPPING, "a link intent without link_from");
    }
    rc = ferry_store_link_find_by_dst(jc->w->store, jc->src_system, jc->src_object, jc->src_id,
                                      fsys, fobj, &origin, err);
    if (rc == FERRY_ENOTFOUND) {
        ferry_err_clear(err);
        audit(jc, NULL, "skip", "no %s %s was synced to this %s: nothing to link", fsys, fobj,
              jc->src_object);
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    /* Match like an update would, without the job's own link. */
    rc = plan_upsert(jc, intent, true, &p, err);
    if (rc < 0 || !p.dst_id) {
        if (rc == 0) {
            audit(jc, p.tsys, "skip", "%s: no record to link %s %s to", p.tobj, fobj, origin);
        }
        plan_clear(&p);
        free(origin);
        return rc;
    }
    struct ferry_link_key key = {.src_system = fsys,
                                 .src_object = fobj,
                                 .src_id = origin,
                                 .dst_system = p.tsys,
                                 .dst_object = p.tobj};
    rc = ferry_store_link_get(jc->w->store, &key, &have, err);
    if (rc == 0 && have.dst_id && have.dst_id[0]) {
        if (strcmp(have.dst_id, p.dst_id) != 0) {
            audit(jc, p.tsys, "link", "%s %s stays linked to %s %s (this record names %s)", fobj,
                  origin, p.tobj, have.dst_id, p.dst_id);
        }
        rc = 0;
    } else if (rc == 0 || rc == FERRY_ENOTFOUND) {
        ferry_err_clear(err);
        /* No content hash: the source's next sync compares with nothing
         * and sends what it owns to the record it now knows. */
        struct ferry_link link = {.dst_id = p.dst_id, .etag = p.etag};
        rc = jc->dry ? 0 : ferry_store_link_put(jc->w->store, &key, &link, jc->w->rt->clock(), err);
        if (rc == 0) {
            audit(jc, p.tsys, "link", "%s %s linked to %s %s (%s)", fobj, origin, p.tobj, p.dst_id,
                  p.how);
        }
    }
    ferry_link_clear(&have);
    plan_clear(&p);
    free(origin);
    return rc;
}

static void outcome_from_error(struct ferry_worker *w, const struct ferry_job *job, int rc,
                               const struct ferry_err *err, struct ferry_outcome *out)
{
    const struct ferry_config *cfg = w->rt->cfg;
    int attempts = job->attempts + 1;
    snprintf(out->error, sizeof(out->error), "%s: %s", ferry_err_name(rc),
             err->msg[0] ? err->msg : ferry_strerror(rc));
    /* Conflicting attempts are counted apart from the others: a job that
     * spent attempts on an unavailable target still gets its tries against a
     * version that moved. The count rides in the retry's error text, which
     * is what the job keeps of its last attempt. */
    const char *tag = job->last_error ? strstr(job->last_error, CONFLICT_TAG) : NULL;
    int conflicts = (tag ? atoi(tag + strlen(CONFLICT_TAG)) : 0) + 1;
    if (rc == FERRY_ECONFLICT && !strstr(err->msg, park_mark) && conflicts < CONFLICT_ATTEMPTS &&
        attempts < cfg->retry_max_attempts) {
        /* The connector re-read and re-applied once already, and met another
         * version again. That version may be ferry's own earlier write whose
         * answer was lost, followed by someone's edit: a fresh attempt a
         * moment later usually goes through. */
        size_t n = strlen(out->error);
        snprintf(out->error + n, sizeof(out->error) - n, "%s%d of %d)", CONFLICT_TAG, conflicts,
                 CONFLICT_ATTEMPTS);
        out->kind = FERRY_OUTCOME_RETRY;
        out->retry_at_ms =
            w->rt->clock() + ferry_pipeline_backoff_ms(cfg, attempts, 0, (uint32_t)job->id);
        return;
    }
    if (rc == FERRY_ECONFLICT) {
        /* A record that keeps changing under us, or a conflict the mapping's
         * policy parks, needs a person, not a retry loop. The message carries
         * both versions. */
        out->kind = FERRY_OUTCOME_DEAD;
        char tmp[sizeof(out->error)];
        snprintf(tmp, sizeof(tmp), "parked: %.*s", (int)(sizeof(tmp) - 9), out->error);
        memcpy(out->error, tmp, sizeof(out->error));
        return;
    }
    if (ferry_err_transient(rc) && attempts < cfg->retry_max_attempts) {
        out->kind = FERRY_OUTCOME_RETRY;
        out->retry_at_ms =
            w->rt->clock() +
            ferry_pipeline_backoff_ms(cfg, attempts, err->retry_after_ms, (uint32_t)job->id);
    } else {
        out->kind = FERRY_OUTCOME_DEAD;
        if (ferry_err_transient(rc)) {
            size_t n = strlen(out->error);
            snprintf(out->error + n, sizeof(out->error) - n, " (gave up after %d attempts)",
                     attempts);
        }
    }
}

/*
 * A reference that found nothing (no linked record, or the record's property
 * is empty): its default when it has one (null leaves the field out), else a
 * transient failure, so the job waits for the other record to be synced.
 */
static int ref_unresolved(const char *tsys, const char *tobj, const char *k, const json_t *ref,
                          const char *want, json_t **value, struct ferry_err *err)
{
    const json_t *d = json_object_get(ref, "default");
    if (d) {
        *value = json_is_null(d) ? NULL : json_incref((json_t *)d);
        return 0;
    }
    if (want) {
        return ferry_err_set(err, FERRY_EUNAVAILABLE,
                             "field %s refers to the %s of a %s record in %s that has none yet; "
                             "waiting for it to be set",
                             k, want, tobj, tsys);
    }
    return ferry_err_set(err, FERRY_EUNAVAILABLE,
                         "field %s refers to a %s record that is not in %s yet; waiting for it "
                         "to sync",
                         k, tobj, tsys);
}

/*
 * Field values of the form {"$ref": {...}} name another record's counterpart
 * in the target (e.g. the CRM id of the customer's company, for a contact's
 * account field). Two forms:
 *   {"object", "id", ["system"], ["target_object" | "target"], ["target_system"],
 *    ["field" | "property"], ["default"]}: through the link table (the source
 *    system defaults to the job's, the target to the intent's);
 *   {"lookup": {"target", "field", "value"}, ["property"], ["default"]}: a
 *    lookup in the intent's target system.
 * The id is returned unless a property other than the target's key is asked
 * for; then the target record is read. Unresolved: the default when one is
 * given (null leaves the field out), else a transient failure (the job waits
 * for the other record to be synced).
 */
static int resolve_one(struct job_ctx *jc, const json_t *intent, const char *k, const json_t *ref,
                       json_t **value, struct ferry_err *err)
{
    struct ferry_runtime *rt = jc->w->rt;
    const json_t *target = json_object_get(intent, "target");
    const json_t *lookup = json_object_get(ref, "lookup");
    const char *tsys = json_string_value(json_object_get(ref, "target_system"));
    const char *tobj = json_string_value(json_object_get(ref, "target_object"));
    const char *want = json_string_value(json_object_get(ref, "property"));
    char *dst = NULL;
    int rc = 0;
    bool unset = false;
    *value = NULL;
    if (!want) {
        want = json_string_value(json_object_get(ref, "field"));
    }
    if (!tobj) {
        /* Short form: "target" is the target object, the system the intent's. */
        tobj = json_string_value(json_object_get(lookup ? lookup : ref, "target"));
    } else if (!tsys) {
        tsys = json_string_value(json_object_get(ref, "target"));
    }
    if (!tsys) {
        tsys = json_string_value(json_object_get(target, "system"));
    }
    int idx = tsys ? ferry_runtime_instance(rt, tsys) : -1;
    if (!tobj || idx < 0) {
        return ferry_err_set(err, FERRY_EMAPPING, "field %s: a $ref without a usable target", k);
    }
    struct ferry_instance *inst = &rt->instances[idx];
    struct ferry_call call;
    ferry_call_init(&call, rt, jc->w, (size_t)idx, jc->job->correlation_id, jc->job->id);
    call.quiet = jc->dry;
    json_t *found_rec = NULL;
    if (lookup) {
        const char *field = json_string_value(json_object_get(lookup, "field"));
        char *v = ferry_json_scalar_text(json_object_get(lookup, "value"));
        json_t *found = NULL;
        if (!field || !v || !inst->conn->lookup) {
            free(v);
            return ferry_err_set(err, FERRY_EMAPPING,
                                 "field %s: a $ref lookup needs field and value", k);
        }
        rc = inst->conn->lookup(inst->state, &call, tobj, field, v, &found, err);
        free(v);
        if (rc == 0 && found) {
            dst = ferry_strdup(json_string_value(json_object_get(found, "id")));
            found_rec = json_incref(json_object_get(found, "record"));
        }
        json_decref(found);
    } else {
        const char *sys = json_string_value(json_object_get(ref, "system"));
        const char *obj = json_string_value(json_object_get(ref, "object"));
        char *id = ferry_json_scalar_text(json_object_get(ref, "id"));
        if (!obj || !id) {
            free(id);
            return ferry_err_set(err, FERRY_EMAPPING, "field %s: a $ref needs object and id", k);
        }
        struct ferry_link_key key = {.src_system = sys ? sys : jc->src_system,
                                     .src_object = obj,
                                     .src_id = id,
                                     .dst_system = tsys,
                                     .dst_object = tobj};
        struct ferry_link link = {0};
        rc = ferry_store_link_get(jc->w->store, &key, &link, err);
        if (rc == 0 && link.dst_id && link.dst_id[0]) {
            dst = ferry_strdup(link.dst_id);
        } else if (rc == FERRY_ENOTFOUND) {
            rc = 0;
        }
        ferry_link_clear(&link);
        free(id);
    }
    if (rc < 0) {
        json_decref(found_rec);
        return rc;
    }
    if (!dst) {
        json_decref(found_rec);
        return ref_unresolved(tsys, tobj, k, ref, NULL, value, err);
    }
    const char *key_name =
        inst->schema
            ? json_string_value(json_object_get(json_object_get(inst->schema, tobj), "key"))
            : NULL;
    if (!want || strcmp(want, "id") == 0 || (key_name && strcmp(want, key_name) == 0)) {
        *value = json_string(dst);
    } else {
        json_t *rec = found_rec ? json_incref(found_rec) : NULL;
        if (!rec) {
            if (!inst->conn->fetch) {
                free(dst);
                return ferry_err_set(err, FERRY_ECONFIG, "field %s: connector %s cannot fetch", k,
                                     tsys);
            }
            rc = inst->conn->fetch(inst->state, &call, tobj, dst, &rec, err);
        }
        if (rc == 0) {
            const json_t *got = json_object_get(rec, want);
            const char *text = json_string_value(got);
            if (!got) {
                rc = ferry_err_set(err, FERRY_EMAPPING, "field %s: %s %s has no %s", k, tobj, dst,
                                   want);
            } else if (json_is_null(got) || (text && !text[0])) {
                /* The record is there but the property is empty (a contact
                 * not yet assigned to an account): sending it would clear
                 * the field, so it counts as not resolved. */
                unset = true;
            } else {
                *value = json_incref((json_t *)got);
            }
        }
        json_decref(rec);
    }
    json_decref(found_rec);
    free(dst);
    if (rc == 0 && unset) {
        return ref_unresolved(tsys, tobj, k, ref, want, value, err);
    }
    return rc;
}

static int resolve_refs(struct job_ctx *jc, json_t *intent, struct ferry_err *err)
{
    json_t *fields = json_object_get(intent, "fields");
    const char *k;
    json_t *v;
    void *tmp;
    /* A lookup's value may be a reference too (the opportunity of the
     * account of the buyer's contact). One that does not resolve matches
     * nothing, rather than holding the job: an update then finds no record. */
    size_t i;
    json_t *rule;
    json_array_foreach(json_object_get(intent, "match"), i, rule)
    {
        json_t *ref = json_object_get(json_object_get(rule, "value"), "$ref");
        json_t *value = NULL;
        if (!json_is_object(ref)) {
            continue;
        }
        json_t *lenient = json_deep_copy(ref);
        if (!json_object_get(lenient, "default")) {
            json_object_set_new(lenient, "default", json_null());
        }
        const char *field = json_string_value(json_object_get(rule, "field"));
        int rc = resolve_one(jc, intent, field ? field : "match", lenient, &value, err);
        json_decref(lenient);
        if (rc == FERRY_EMAPPING) {
            /* The related record lacks the property: nothing to match by. */
            ferry_err_clear(err);
            rc = 0;
        }
        if (rc < 0) {
            return rc;
        }
        char *text = value && !json_is_null(value) ? ferry_json_scalar_text(value) : NULL;
        json_object_set_new(rule, "value", text ? json_string(text) : json_null());
        free(text);
        json_decref(value);
    }
    json_object_foreach_safe(fields, tmp, k, v)
    {
        json_t *ref = json_object_get(v, "$ref");
        json_t *value = NULL;
        if (!json_is_object(v) || !json_is_object(ref)) {
            continue;
        }
        int rc = resolve_one(jc, intent, k, ref, &value, err);
        if (rc < 0) {
            return rc;
        }
        if (value) {
            json_object_set_new(fields, k, value);
        } else {
            json_object_del(fields, k);
        }
    }
    return 0;
}

/*
 * A job of a batch whose single write waits for the batch's round trip; it
 * owns what the plan borrows (payload, record, intents).
 */
struct batch_member {
    const struct ferry_job *job;
    struct ferry_outcome *out;
    bool leased;
    bool pending;
    int64_t started_ms;
    bool prepared; /* mapped, waiting to be planned with the batch's lookups */
    json_t *payload, *fetched, *intents, *context, *echo;
    json_t *linked; /* "system/object": whether the record was linked there (previous_versions) */
    struct job_ctx jc;
    struct plan p;
    /* The batch's answer for the write, kept for finish_written. */
    bool written;
    int wrc; /* 0 or the write's FERRY_E* code */
    struct ferry_err werr;
    json_t *wres;
    size_t batch_n; /* writes in the same round trip */
};

static bool can_write_many(struct ferry_runtime *rt, int idx)
{
    const struct ferry_connector *c = rt->instances[idx].conn;
    return FERRY_CONNECTOR_HAS(c, write_many) && c->write_many != NULL;
}

static int execute_ex(struct ferry_worker *w, const struct ferry_job *job,
                      struct ferry_outcome *out, struct batch_member *bm);

static json_t *previous_versions(struct ferry_worker *w, const char *system, const char *object,
                                 const char *id, json_t *linked);

/*
 * What a mapping's functions see as ctx: the event and its detail, the
 * previous versions and the settings of every mapping (the engine hands each
 * its own as ctx.settings).
 */
static json_t *job_context(struct ferry_worker *w, const char *event, const char *system,
                           const char *object, const char *id, const json_t *event_data,
                           json_t *linked)
{
    /* ctx.features.refs tells commerce.ref that {"$ref": ...} values are
     * resolved here (resolve_refs). A reference with a default (null: leave
     * the field out) never holds a job; one without waits for the record it
     * names, so mappings give defaults to every reference the target does
     * not require. */
    json_t *features = json_object();
    if (features && json_object_set_new_nocheck(features, "refs", json_true()) < 0) {
        json_decref(features);
        features = NULL;
    }
    /* What json_pack("{s:s, s:s, s:s, s:s, s:O?, s:o, s:O?, s:{s:b}}") built, without parsing
     * that format for every job: a missing or non-UTF-8 string fails the whole context. */
    static const char *const keys[] = {"event",      "system",   "object",           "id",
                                       "event_data", "previous", "mapping_settings", "features"};
    json_t *vals[] = {event ? json_string(event) : NULL,
                      system ? json_string(system) : NULL,
                      object ? json_string(object) : NULL,
                      id ? json_string(id) : NULL,
                      event_data ? json_incref((json_t *)event_data) : json_null(),
                      previous_versions(w, system, object, id, linked),
                      w->rt->cfg->mapping_settings ? json_incref(w->rt->cfg->mapping_settings)
                                                   : json_null(),
                      features};
    json_t *ctx = json_object();
    bool ok = ctx != NULL;
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        if (!vals[i]) {
            ok = false;
        } else if (!ok) {
            json_decref(vals[i]);
        } else if (json_object_set_new_nocheck(ctx, keys[i], vals[i]) < 0) {
            ok = false;
        }
    }
    if (!ok) {
        json_decref(ctx);
        return NULL;
    }
    return ctx;
}

/*
 * ctx.group_events: the other events of the job's business entity (its
 * group, e.g. "order:42") that arrived within the coalescing window either
 * side of it, so that a refund's task can say what the order's status became
 * and the status rule can leave a refund's status change to the refund.
 * Intake holds grouped events for the window, so those that arrive together
 * are all in the queue when the first one runs.
 */
static void add_group_events(struct ferry_worker *w, const struct ferry_job *job,
                             const json_t *payload, json_t *context)
{
    const char *group = json_string_value(json_object_get(payload, "group"));
    int64_t window = w->rt->cfg->coalesce_window_ms;
    json_t *events = NULL;
    struct ferry_err err = {0};
    if (!group || !context) {
        return;
    }
    if (window < 1000) {
        window = 1000; /* events of one action arrive within a second even without waiting */
    }
    if (ferry_store_group_events(w->store, group, job->created_at_ms - window,
                                 job->created_at_ms + window, job->id, &events, &err) < 0) {
        ferry_warn("events of group %s not read: %s", group, err.msg);
        return;
    }
    json_object_set_new(context, "group", json_string(group));
    json_object_set_new(context, "group_events", events);
}

/*
 * ctx.previous for the mappings: per main target ("system/object"), the
 * fields ferry last wrote there for this record, so a rule can tell what
 * changed (e.g. a status) without any I/O of its own. A new object.
 * `linked` (may be NULL) gets "system/object": whether a link was there.
 */
static json_t *previous_versions(struct ferry_worker *w, const char *system, const char *object,
                                 const char *id, json_t *linked)
{
    json_t *out = json_object();
    json_t *targets = ferry_mapping_set_targets_of(w->mappings, system, object);
    size_t i;
    json_t *t;
    json_array_foreach(targets, i, t)
    {
        struct ferry_link_key key = {.src_system = system,
                                     .src_object = object,
                                     .src_id = id,
                                     .dst_system = json_string_value(json_object_get(t, "system")),
                                     .dst_object = json_string_value(json_object_get(t, "object"))};
        struct ferry_link link = {0};
        struct ferry_err err = {0};
        char name[256];
        ferry_fmt(name, sizeof(name), "%s/%s", key.dst_system, key.dst_object);
        int rc = ferry_store_link_get(w->store, &key, &link, &err);
        if (rc == 0 && link.fields) {
            json_t *fields = json_loads(link.fields, 0, NULL);
            if (fields) {
                json_object_set_new(out, name, fields);
            }
        }
        if (linked && (rc == 0 || rc == FERRY_ENOTFOUND)) {
            json_object_set_new(linked, name,
                                json_boolean(rc == 0 && link.dst_id && link.dst_id[0]));
        }
        ferry_link_clear(&link);
    }
    json_decref(targets);
    return out ? out : json_object();
}

static int execute(struct ferry_worker *w, const struct ferry_job *job, struct ferry_outcome *out)
{
    return execute_ex(w, job, out, NULL);
}

static int execute_ex(struct ferry_worker *w, const struct ferry_job *job,
                      struct ferry_outcome *out, struct batch_member *bm)
{
    struct ferry_runtime *rt = w->rt;
    struct ferry_err err = {0};
    json_t *payload = NULL, *fetched = NULL, *intents = NULL, *context = NULL, *echo = NULL;
    json_t *linked = NULL;
    int rc = 0;

    /* A job its poll queued in this process gets the record the poll
     * parsed; otherwise the stored text is parsed. */
    payload = ferry_runtime_payload_take(rt, job->id, strlen(job->payload));
    if (!payload) {
        payload = json_loads(job->payload, 0, NULL);
    }
    const char *source = json_string_value(json_object_get(payload, "source"));
    const char *object = json_string_value(json_object_get(payload, "object"));
    const char *id = json_string_value(json_object_get(payload, "id"));
    const char *event = json_string_value(json_object_get(payload, "event"));
    const json_t *record = json_object_get(payload, "record");
    if (event) {
        ferry_fmt(out->event, sizeof(out->event), "%s", event);
    }
    out->has_snapshot = record != NULL;
    if (!source || !object || !id || !event) {
        rc = ferry_err_set(&err, FERRY_EBADINPUT, "job payload lacks source/object/id/event");
        goto fail;
    }
    struct ferry_log_ctx lctx = {
        .correlation_id = job->correlation_id,
        .connector = source,
        .object = object,
        .id = id,
        .job_id = job->id,
    };
    ferry_log_ctx_set(&lctx);

    struct job_ctx jc = {
        .w = w, .job = job, .src_system = source, .src_object = object, .src_id = id};
    int idx = ferry_runtime_instance(rt, source);
    if (idx < 0) {
        rc = ferry_err_set(&err, FERRY_ECONFIG, "connector '%s' is not configured", source);
        goto fail;
    }
    rc = ferry_worker_refresh_mappings(w, &err);
    if (rc < 0) {
        ferry_warn("mappings not reloaded, keeping the previous set: %s", err.msg);
        ferry_err_clear(&err);
    }
    /* Webhooks arrive for every event of a scope; a fetch for one that no
     * mapping reads would only spend the source's request quota. */
    if (!ferry_mapping_set_reacts(w->mappings, source, object, event)) {
        audit(&jc, NULL, "map", "no mapping reacts to %s %s (%s); not fetched", object, id, event);
        out->kind = FERRY_OUTCOME_DONE;
        rc = 0;
        goto done;
    }
    if (!record) {
        struct ferry_instance *inst = &rt->instances[idx];
        struct ferry_call call;
        ferry_call_init(&call, rt, w, (size_t)idx, job->correlation_id, job->id);
        if (!inst->conn->fetch) {
            rc = ferry_err_set(&err, FERRY_EUNSUPPORTED, "connector %s cannot fetch", source);
            goto fail;
        }
        rc = inst->conn->fetch(inst->state, &call, object, id, &fetched, &err);
        if (rc == FERRY_EFILTERED) {
            audit(&jc, source, "skip", "%s %s excluded by the connector's configuration: %s",
                  object, id, err.msg);
            out->kind = FERRY_OUTCOME_DONE;
            rc = 0;
            goto done;
        }
        if (rc == FERRY_ENOTFOUND) {
            audit(&jc, source, "skip", "%s %s no longer exists at the source", object, id);
            out->kind = FERRY_OUTCOME_DONE;
            rc = 0;
            goto done;
        }
        if (rc < 0) {
            goto fail;
        }
        record = fetched;
    }

    echo = echo_rows(w, source, object, id, record);
    jc.echo = echo;
    /* A batch member keeps what the context's reads found for prefetch_lookups. */
    linked = bm ? json_object() : NULL;
    context =
        job_context(w, event, source, object, id, json_object_get(payload, "event_data"), linked);
    add_group_events(w, job, payload, context);
    /* When the event reached ferry, so that a mapping can tell a record a
     * poll finds moments after it was made from a backfill's old ones. */
    char received[21];
    ferry_iso8601_format(job->created_at_ms, received);
    json_object_set_new(context, "received_at", json_string(received));
    rc = ferry_mapping_set_run(w->mappings, source, object, event, record, context, &intents, &err);
    if (rc < 0) {
        goto fail;
    }
    if (json_array_size(intents) == 0) {
        audit(&jc, NULL, "map", "no mapping produced an intent for %s %s (%s)", object, id, event);
    }
    /* Decisions the mapping's helpers recorded (e.g. which rule chose an owner). */
    size_t ni;
    json_t *nintent;
    json_array_foreach(intents, ni, nintent)
    {
        size_t k;
        json_t *note;
        json_array_foreach(json_object_get(nintent, "notes"), k, note)
        {
            if (json_is_string(note)) {
                audit(&jc, NULL, "decision", "%s: %.400s",
                      json_string_value(json_object_get(nintent, "mapping")),
                      json_string_value(note));
            }
        }
    }
    if (bm && json_array_size(intents) == 1) {
        /* A single intent: nothing earlier in the job can be what it refers to. */
        rc = resolve_refs(&jc, json_array_get(intents, 0), &err);
        if (rc < 0) {
            goto fail;
        }
        json_t *only = json_array_get(intents, 0);
        const char *op = json_string_value(json_object_get(only, "op"));
        if (op && strcmp(op, "upsert") == 0) {
            /* Planned once every member is prepared, so that their lookups
             * can share round trips (prefetch_lookups, plan_prepared). The
             * batch takes everything the context borrows. */
            bm->jc = jc;
            bm->prepared = true;
            bm->payload = payload;
            bm->fetched = fetched;
            bm->intents = intents;
            bm->context = context;
            bm->echo = echo;
            bm->linked = linked;
            payload = fetched = intents = context = echo = linked = NULL;
            return 0;
        }
    }
    size_t i;
    json_t *intent;
    json_array_foreach(intents, i, intent)
    {
        const char *op = json_string_value(json_object_get(intent, "op"));
        jc.end_after_write = !bm && i + 1 == json_array_size(intents);
        /* Resolved now, after the job's earlier intents: a contact created a
         * moment ago is what a task's contact field refers to. */
        rc = resolve_refs(&jc, intent, &err);
        if (rc < 0) {
            goto fail;
        }
        if (op && strcmp(op, "upsert") == 0) {
            rc = apply_upsert(&jc, intent, &out->writes, &err);
        } else if (op && strcmp(op, "update") == 0) {
            rc = apply_update(&jc, intent, &out->writes, &err);
        } else if (op && strcmp(op, "link") == 0) {
            rc = apply_link(&jc, intent, &err);
        } else {
            rc = ferry_err_set(&err, FERRY_EMAPPING, "intent op '%s' is not supported",
                               op ? op : "(none)");
        }
        if (rc < 0) {
            goto fail;
        }
    }
    out->kind = FERRY_OUTCOME_DONE;
    goto done;

fail:
    outcome_from_error(w, job, rc, &err, out);
    rc = 0;
done : {
    /* The context pointed into the payload, which is about to go. */
    struct ferry_log_ctx keep = {.correlation_id = job->correlation_id, .job_id = job->id};
    ferry_log_ctx_set(&keep);
}
    json_decref(linked);
    json_decref(echo);
    json_decref(context);
    json_decref(intents);
    json_decref(fetched);
    json_decref(payload);
    return rc;
}

/* Store a job's outcome: finish (and supersede), retry with backoff, or bury. */
/*
 * After a success: pending jobs of the same record and event that were
 * queued before this job's view of the record are covered by it. A polled
 * job's view is its snapshot (taken when it was queued); otherwise the fetch.
 */
static void coalesce_after(struct ferry_worker *w, const struct ferry_job *job,
                           const struct ferry_outcome *out, int64_t started_ms, bool any)
{
    const char *event = out->event[0] ? out->event : NULL;
    int64_t read_at = out->has_snapshot ? job->created_at_ms : started_ms;
    int64_t n = 0;
    struct ferry_err err = {0};
    if (any && event &&
        ferry_store_jobs_coalesce(w->store, job->job_key, event, job->id, read_at, w->rt->clock(),
                                  &n, &err) < 0) {
        ferry_warn("coalescing skipped: %s", err.msg);
    }
    if (n > 0) {
        ferry_debug("%lld queued %s event(s) of %s covered by this job", (long long)n, event,
                    job->job_key);
        if (ferry_store_counter_add(w->store, "coalesced_total", n, w->rt->clock(), &err) < 0) {
            ferry_warn("counter not updated: %s", err.msg);
        }
    }
}

static int record_outcome(struct ferry_worker *w, const struct ferry_job *job,
                          const struct ferry_outcome *out, int64_t started_ms)
{
    struct ferry_err err = {0};
    int64_t now = w->rt->clock();
    int rc;
    /* A batch records its members' outcomes one after the other: each line
     * must carry its own job's correlation ID, not the last member's. */
    struct ferry_log_ctx lctx = {.correlation_id = job->correlation_id, .job_id = job->id};
    ferry_log_ctx_set(&lctx);
    /* Which rules decided this outcome, for replays and audits. */
    struct ferry_job_end end = {.mapping_hash =
                                    w->mappings ? ferry_mapping_set_hash(w->mappings) : NULL};
    ferry_metrics_job_outcome(job->job_key, out->kind, job->created_at_ms, now);
    switch (out->kind) {
    case FERRY_OUTCOME_DONE: {
        int64_t superseded = 0;
        bool dead = true, queued = true;
        end.state = FERRY_JOB_DONE;
        rc = ferry_store_job_end(w->store, job->id, now, &end, &err);
        if (rc == 0) {
            /* Mostly neither follow-up has anything to do; when this read
             * fails, both run and find out for themselves. */
            struct ferry_err ferr = {0};
            if (ferry_store_job_followups(w->store, job->job_key, job->id,
                                          out->event[0] ? out->event : NULL,
                                          out->has_snapshot ? job->created_at_ms : started_ms,
                                          &dead, &queued, &ferr) < 0) {
                dead = queued = true;
            }
        }
        /* A later success for the same record makes its older dead letters moot. */
        if (rc == 0 && dead) {
            rc =
                ferry_store_jobs_supersede(w->store, job->job_key, job->id, now, &superseded, &err);
        }
        if (superseded > 0) {
            ferry_info("%lld older dead letter(s) of %s superseded by this job",
                       (long long)superseded, job->job_key);
        }
        if (rc == 0) {
            coalesce_after(w, job, out, started_ms, queued);
        }
        ferry_debug("job done (%d write(s))", out->writes);
        break;
    }
    case FERRY_OUTCOME_RETRY:
        end.state = FERRY_JOB_PENDING;
        end.next_attempt_at_ms = out->retry_at_ms;
        end.error = out->error;
        rc = ferry_store_job_end(w->store, job->id, now, &end, &err);
        ferry_warn("job will be retried in %lld ms: %s", (long long)(out->retry_at_ms - now),
                   out->error);
        break;
    default:
        end.state = FERRY_JOB_DEAD;
        end.error = out->error;
        rc = ferry_store_job_end(w->store, job->id, now, &end, &err);
        ferry_error("job dead-lettered: %s", out->error);
        break;
    }
    if (rc < 0) {
        ferry_error("job %lld: outcome not recorded: %s", (long long)job->id, err.msg);
    }
    return rc;
}

/*
 * A job's (or batch's) audit rows wait on the worker's connection and are
 * written by the commit that records its outcome (see ferry_store_audit_hold).
 */
static void hold_audit(struct ferry_worker *w, bool on)
{
    struct ferry_err err = {0};
    /* Likewise the connectors' quota reports (their last values). */
    ferry_worker_hold_quota(w, on);
    if (ferry_store_audit_hold(w->store, on, &err) < 0) {
        ferry_warn("audit rows not written: %s", err.msg);
    }
}

/*
 * The transaction a job's (or batch's) end is written in: outcomes, their
 * links and ledger rows and the held audit rows, in one commit. It opens
 * only once every remote call of the job is over, because it holds the
 * write lock. Without it (no write lock within the busy timeout) each
 * statement commits alone, as it would have anyway.
 */
static bool end_begin(struct ferry_worker *w)
{
    struct ferry_err err = {0};
    if (ferry_store_begin(w->store, &err) < 0) {
        ferry_warn("outcomes recorded without a transaction: %s", err.msg);
        return false;
    }
    return true;
}

/* Ends what end_begin opened; FERRY_EDB when nothing of it was recorded. */
static int end_commit(struct ferry_worker *w, bool tx, size_t jobs)
{
    struct ferry_err err = {0};
    ferry_worker_flush_quota(w);
    if (tx && ferry_store_commit(w->store, &err) < 0) {
        ferry_error("outcomes of %zu job(s) not recorded: %s", jobs, err.msg);
        return FERRY_EDB;
    }
    return 0;
}

int ferry_pipeline_run_job(struct ferry_worker *w, const struct ferry_job *job,
                           struct ferry_outcome *out)
{
    struct ferry_err err = {0};
    int64_t now = w->rt->clock();
    int rc;

    memset(out, 0, sizeof(*out));
    rc = ferry_store_job_lease(w->store, job->id, now, now + LEASE_MS, &err);
    if (rc < 0) {
        ferry_warn("job %lld not leased: %s", (long long)job->id, err.msg);
        return rc;
    }
    hold_audit(w, true);
    execute(w, job, out);
    /* Its last write may have opened it already (open_end_after_write). */
    bool tx = ferry_store_in_transaction(w->store) || end_begin(w);
    rc = record_outcome(w, job, out, now);
    int crc = end_commit(w, tx, 1);
    rc = rc < 0 ? rc : crc;
    hold_audit(w, false);
    ferry_log_ctx_clear();
    return rc;
}

static void member_free(struct batch_member *m)
{
    plan_clear(&m->p);
    json_decref(m->wres);
    json_decref(m->linked);
    json_decref(m->echo);
    json_decref(m->payload);
    json_decref(m->fetched);
    json_decref(m->intents);
    json_decref(m->context);
}

/* One target instance's pending writes of a batch, in one write_many call. */
static void flush_batch(struct ferry_worker *w, struct batch_member *ms, size_t n, int idx)
{
    struct ferry_runtime *rt = w->rt;
    struct ferry_instance *inst = &rt->instances[idx];
    struct ferry_write *writes = calloc(n, sizeof(*writes));
    size_t *who = calloc(n, sizeof(*who));
    size_t k = 0;
    json_t *results = NULL;
    struct ferry_err err = {0};
    const struct batch_member *first = NULL;

    if (!writes || !who) {
        free(writes);
        free(who);
        for (size_t i = 0; i < n; i++) {
            if (ms[i].pending && ms[i].p.idx == idx) {
                ms[i].pending = false;
                outcome_from_error(w, ms[i].job, FERRY_ENOMEM,
                                   &(struct ferry_err){.msg = "out of memory"}, ms[i].out);
            }
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (!ms[i].pending || ms[i].p.idx != idx) {
            continue;
        }
        first = first ? first : &ms[i];
        writes[k] = (struct ferry_write){.op = ms[i].p.op,
                                         .object = ms[i].p.tobj,
                                         .id = ms[i].p.dst_id,
                                         .etag = ms[i].p.etag,
                                         .fields = ms[i].p.write};
        who[k++] = i;
    }
    struct ferry_call call;
    ferry_call_init(&call, rt, w, (size_t)idx, first->job->correlation_id, first->job->id);
    int rc = inst->conn->write_many(inst->state, &call, writes, k, &results, &err);
    if (rc == 0 && json_array_size(results) != k) {
        rc = ferry_err_set(&err, FERRY_EPLUGIN, "connector %s: write_many answered %zu of %zu",
                           inst->name, json_array_size(results), k);
    }
    for (size_t j = 0; j < k; j++) {
        struct batch_member *m = &ms[who[j]];
        json_t *res = json_array_get(results, j);
        m->pending = false;
        m->written = true;
        m->batch_n = k;
        m->out->writes++;
        if (rc < 0) {
            /* Nothing says which writes of the batch took effect: creates are
             * treated as of unknown outcome (looked up before any retry);
             * updates are safe to send again. */
            m->wrc = m->p.op == FERRY_WRITE_CREATE ? FERRY_EUNKNOWN_OUTCOME : rc;
            ferry_err_set(&m->werr, m->wrc, "%s (batch of %zu)", err.msg, k);
        } else if (json_is_true(json_object_get(res, "ok"))) {
            m->wrc = 0;
        } else {
            m->wrc = (int)json_integer_value(json_object_get(res, "code"));
            if (m->wrc >= 0) {
                m->wrc = FERRY_EPROTO;
            }
            const char *msg = json_string_value(json_object_get(res, "error"));
            ferry_err_set(&m->werr, m->wrc, "%s", msg ? msg : ferry_strerror(m->wrc));
        }
        m->wres = json_incref(res);
    }
    json_decref(results);
    free(writes);
    free(who);
}

static void set_member_log_ctx(const struct batch_member *m)
{
    struct ferry_log_ctx lctx = {.correlation_id = m->job->correlation_id,
                                 .connector = m->jc.src_system,
                                 .object = m->jc.src_object,
                                 .id = m->jc.src_id,
                                 .job_id = m->job->id};
    ferry_log_ctx_set(&lctx);
}

/*
 * A member's part of its batch's answer, recorded once every round trip of
 * the batch is over (inside the batch's end transaction): its link, ledger
 * and audit rows, or why it runs again.
 */
static void finish_written(struct ferry_worker *w, struct batch_member *m)
{
    struct ferry_runtime *rt = w->rt;
    const char *name = rt->instances[m->p.idx].name;
    int mrc = m->wrc;
    set_member_log_ctx(m);
    if (mrc == 0) {
        audit(&m->jc, name, "write", "%s: written in a batch of %zu", m->p.tobj, m->batch_n);
    }
    if (mrc == FERRY_ENOTFOUND && m->p.op == FERRY_WRITE_UPDATE) {
        /* The linked record is gone: the job runs again on its own, where
         * the mapping's match rules find it anew (or create it). */
        audit(&m->jc, name, "match", "%s %s: linked record is gone; matching again", m->p.tobj,
              m->p.dst_id);
        m->out->kind = FERRY_OUTCOME_RETRY;
        m->out->retry_at_ms = rt->clock();
        snprintf(m->out->error, sizeof(m->out->error), "ENOTFOUND: %s", m->werr.msg);
        return;
    }
    if (mrc == FERRY_ECONFLICT && m->p.op == FERRY_WRITE_UPDATE) {
        /* A batch part cannot re-read the record (e.g. its stored version
         * is stale because an earlier attempt's write took effect before
         * a crash): the job runs again on its own, where the connector
         * re-reads and applies the change once more. */
        audit(&m->jc, name, "write", "%s %s: version conflict in a batch; retrying alone",
              m->p.tobj, m->p.dst_id);
        m->out->kind = FERRY_OUTCOME_RETRY;
        m->out->retry_at_ms = rt->clock();
        snprintf(m->out->error, sizeof(m->out->error), "ECONFLICT: %s", m->werr.msg);
        return;
    }
    mrc = finish_plan(&m->jc, &m->p, mrc, m->wres, &m->werr);
    if (mrc < 0) {
        outcome_from_error(w, m->job, mrc, &m->werr, m->out);
    } else {
        m->out->kind = FERRY_OUTCOME_DONE;
    }
}

/*
 * The first lookup of every prepared member that has no link yet, asked per
 * (target, object, field) in one round trip when the connector can
 * (lookup_many): a backfill of new records then costs one lookup request
 * per batch instead of one per record. A new object of answers for
 * lookup_cached, or NULL; a failed round trip leaves the lookups to each
 * member, as before.
 */
static json_t *prefetch_lookups(struct ferry_worker *w, struct batch_member *ms, size_t n)
{
    struct ferry_runtime *rt = w->rt;
    json_t *groups = json_object(), *cache = NULL;
    char gkey[512];
    for (size_t i = 0; groups && i < n; i++) {
        const json_t *only = ms[i].prepared ? json_array_get(ms[i].intents, 0) : NULL;
        const json_t *target = json_object_get(only, "target");
        const char *tsys = json_string_value(json_object_get(target, "system"));
        const char *tobj = json_string_value(json_object_get(target, "object"));
        const char *sid = json_string_value(json_object_get(json_object_get(only, "source"), "id"));
        int idx = tsys ? ferry_runtime_instance(rt, tsys) : -1;
        if (!only || !tobj || idx < 0 ||
            !FERRY_CONNECTOR_HAS(rt->instances[idx].conn, lookup_many) ||
            !rt->instances[idx].conn->lookup_many) {
            continue;
        }
        struct ferry_link_key key = {.src_system = ms[i].jc.src_system,
                                     .src_object = ms[i].jc.src_object,
                                     .src_id = sid ? sid : ms[i].jc.src_id,
                                     .dst_system = tsys,
                                     .dst_object = tobj};
        /* The context's read of this link, moments ago, is good enough to
         * decide whether to ask: plan_upsert reads it again and decides. */
        ferry_fmt(gkey, sizeof(gkey), "%s/%s", tsys, tobj);
        const json_t *known =
            strcmp(key.src_id, ms[i].jc.src_id) == 0 ? json_object_get(ms[i].linked, gkey) : NULL;
        bool linked = json_is_true(known);
        if (!known) {
            struct ferry_link link = {0};
            struct ferry_err err = {0};
            linked = ferry_store_link_get(w->store, &key, &link, &err) == 0 && link.dst_id &&
                     link.dst_id[0];
            ferry_link_clear(&link);
        }
        if (linked) {
            continue; /* the link decides; no lookup */
        }
        size_t k;
        const json_t *rule;
        json_array_foreach(json_object_get(only, "match"), k, rule)
        {
            const char *kind = json_string_value(json_object_get(rule, "rule"));
            const char *field = json_string_value(json_object_get(rule, "field"));
            const char *value = json_string_value(json_object_get(rule, "value"));
            if (!kind || strcmp(kind, "lookup") != 0) {
                continue;
            }
            if (field && value && *value && json_object_size(json_object_get(rule, "where")) == 0) {
                ferry_fmt(gkey, sizeof(gkey), "%d\x1f%s\x1f%s", idx, tobj, field);
                json_t *vals = json_object_get(groups, gkey);
                if (!vals) {
                    json_object_set_new(groups, gkey, vals = json_array());
                }
                json_array_append_new(vals, json_string(value));
            }
            break; /* only the first lookup: later ones run only if it finds nothing */
        }
    }
    const char *g;
    json_t *vals;
    json_object_foreach(groups, g, vals)
    {
        int idx = atoi(g);
        const char *tobj = strchr(g, '\x1f') + 1;
        const char *sep = strchr(tobj, '\x1f');
        char obj[256];
        ferry_fmt(obj, sizeof(obj), "%.*s", (int)(sep - tobj), tobj);
        const char *field = sep + 1;
        size_t nv = json_array_size(vals), k;
        const char **v = calloc(nv, sizeof(*v));
        json_t *found = NULL, *x;
        struct ferry_err err = {0};
        struct ferry_call call;
        struct ferry_instance *inst = &rt->instances[idx];
        if (!v) {
            continue;
        }
        json_array_foreach(vals, k, x)
        {
            v[k] = json_string_value(x);
        }
        ferry_call_init(&call, rt, w, (size_t)idx, ms[0].job->correlation_id, ms[0].job->id);
        if (inst->conn->lookup_many(inst->state, &call, obj, field, v, nv, &found, &err) == 0 &&
            json_array_size(found) == nv) {
            cache = cache ? cache : json_object();
            json_array_foreach(found, k, x)
            {
                char key[1024];
                if (cache && (json_is_null(x) || json_object_get(x, "id"))) {
                    lookup_cache_key(key, sizeof(key), idx, obj, field, v[k]);
                    json_object_set(cache, key, x);
                }
            }
        } else {
            ferry_info("%s lookups of %zu %s record(s) by %s in one request failed (%s); "
                       "looking each up alone",
                       inst->name, nv, obj, field, err.msg[0] ? err.msg : "a partial answer");
        }
        json_decref(found);
        free(v);
    }
    json_decref(groups);
    return cache;
}

/* The rest of a prepared member's job: plan (with the batch's lookups), then
 * leave the write to the batch, write it alone, or finish. */
static void plan_prepared(struct ferry_worker *w, struct batch_member *m, const json_t *cache)
{
    struct ferry_err err = {0};
    json_t *only = json_array_get(m->intents, 0);
    int rc;
    set_member_log_ctx(m);
    m->prepared = false;
    m->jc.lookup_cache = cache;
    rc = plan_upsert(&m->jc, only, false, &m->p, &err);
    m->jc.lookup_cache = NULL;
    if (rc == 0 && m->p.op == 0) {
        m->out->kind = FERRY_OUTCOME_DONE;
        return;
    }
    if (rc == 0 && can_write_many(w->rt, m->p.idx)) {
        m->pending = true;
        return;
    }
    if (rc == 0) {
        rc = write_plan(&m->jc, only, &m->p, &m->out->writes, &err);
    }
    if (rc < 0) {
        outcome_from_error(w, m->job, rc, &err, m->out);
    } else {
        m->out->kind = FERRY_OUTCOME_DONE;
    }
}

/*
 * Every member's lease in one transaction: all are taken before any runs,
 * so they share one commit. FERRY_EDB when none was recorded.
 */
static int lease_members(struct ferry_worker *w, struct batch_member *ms, size_t n, int *failures)
{
    struct ferry_err err = {0};
    int64_t now = w->rt->clock();
    bool tx = ferry_store_begin(w->store, &err) == 0;
    if (!tx) {
        ferry_warn("leases taken without a transaction: %s", err.msg);
    }
    for (size_t i = 0; i < n; i++) {
        if (ferry_store_job_lease(w->store, ms[i].job->id, now, now + LEASE_MS, &err) < 0) {
            ferry_warn("job %lld not leased: %s", (long long)ms[i].job->id, err.msg);
            (*failures)++;
            continue;
        }
        ms[i].leased = true;
    }
    if (tx && ferry_store_commit(w->store, &err) < 0) {
        ferry_error("leases of %zu job(s) not recorded: %s", n, err.msg);
        for (size_t i = 0; i < n; i++) {
            ms[i].leased = false;
        }
        *failures = (int)n;
        return FERRY_EDB;
    }
    return 0;
}

int ferry_pipeline_run_batch(struct ferry_worker *w, struct ferry_job *const *jobs, size_t n,
                             struct ferry_outcome *outs)
{
    struct batch_member *ms = calloc(n ? n : 1, sizeof(*ms));
    int failures = 0;
    if (!ms) {
        return FERRY_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        memset(&outs[i], 0, sizeof(outs[i]));
        ms[i].job = jobs[i];
        ms[i].out = &outs[i];
    }
    if (lease_members(w, ms, n, &failures) < 0) {
        free(ms);
        return FERRY_EDB;
    }
    hold_audit(w, true);
    for (size_t i = 0; i < n; i++) {
        if (ms[i].leased) {
            ms[i].started_ms = w->rt->clock();
            execute_ex(w, jobs[i], &outs[i], &ms[i]);
        }
    }
    json_t *cache = prefetch_lookups(w, ms, n);
    for (size_t i = 0; i < n; i++) {
        if (ms[i].prepared) {
            plan_prepared(w, &ms[i], cache);
        }
    }
    json_decref(cache);
    for (size_t i = 0; i < n; i++) {
        if (ms[i].pending) {
            flush_batch(w, ms, n, ms[i].p.idx);
        }
    }
    /* Every round trip is over: what they produced is recorded together. */
    bool tx = end_begin(w);
    for (size_t i = 0; i < n; i++) {
        if (ms[i].written) {
            finish_written(w, &ms[i]);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (ms[i].leased && record_outcome(w, jobs[i], &outs[i], ms[i].started_ms) < 0) {
            failures++;
        }
    }
    if (end_commit(w, tx, n) < 0) {
        failures = (int)n;
    }
    hold_audit(w, false);
    for (size_t i = 0; i < n; i++) {
        member_free(&ms[i]);
    }
    free(ms);
    ferry_log_ctx_clear();
    return failures ? FERRY_EDB : 0;
}

/* Whether a changed record reached us only through the poll (see pipeline.h). */
static int judge_missed(struct ferry_worker *w, const char *job_key, const char *modified,
                        int64_t now, bool *missed, struct ferry_err *err)
{
    int64_t changed_ms;
    bool announced = false;
    *missed = false;
    if (!modified || ferry_iso8601_parse(modified, &changed_ms) < 0 ||
        now - changed_ms < FERRY_WEBHOOK_GRACE_MS) {
        return 0;
    }
    /* Clocks of the two systems differ a little; a webhook job created up to
     * five seconds before the recorded change still announced it. */
    int rc = ferry_store_job_origin_since(w->store, job_key, FERRY_LANE_REALTIME, changed_ms - 5000,
                                          &announced, err);
    if (rc == 0) {
        *missed = !announced;
    }
    return rc;
}

/*
 * The parsed payloads of a page's new jobs, for ferry_runtime_payload_put
 * once the page is committed.
 */
struct handoff {
    int64_t *ids;
    size_t *lens;
    json_t *payloads; /* array, in the order of ids */
    size_t n, cap;
};

/*
 * Keeps a payload whose record only it holds: the record leaves the page,
 * so that nothing on this thread touches it after the job has it.
 */
static void handoff_add(struct handoff *h, int64_t id, size_t len, json_t *payload, json_t *record)
{
    if (record->refcount != 1 || payload->refcount != 1) {
        json_decref(payload); /* someone else holds it too: the job parses its text */
        return;
    }
    if (h->n == h->cap) {
        size_t ncap = h->cap ? h->cap * 2 : 64;
        int64_t *ids = realloc(h->ids, ncap * sizeof(*ids));
        if (ids) {
            h->ids = ids;
        }
        size_t *lens = ids ? realloc(h->lens, ncap * sizeof(*lens)) : NULL;
        if (lens) {
            h->lens = lens;
        }
        if (!h->payloads) {
            h->payloads = json_array();
        }
        if (!ids || !lens || !h->payloads) {
            json_decref(payload);
            return;
        }
        h->cap = ncap;
    }
    h->ids[h->n] = id;
    h->lens[h->n] = len;
    h->n++;
    json_array_append_new(h->payloads, payload);
}

static void handoff_drop(struct handoff *h)
{
    json_decref(h->payloads);
    free(h->ids);
    free(h->lens);
    memset(h, 0, sizeof(*h));
}

static void handoff_give(struct ferry_runtime *rt, struct handoff *h)
{
    for (size_t i = 0; i < h->n; i++) {
        ferry_runtime_payload_put(rt, h->ids[i], h->lens[i],
                                  json_incref(json_array_get(h->payloads, i)));
    }
    handoff_drop(h);
}

int ferry_pipeline_poll(struct ferry_worker *w, const char *system, const char *object,
                        const char *since_override, struct ferry_poll_result *res,
                        struct ferry_err *err)
{
    struct ferry_runtime *rt = w->rt;
    char *since = NULL, *stored = NULL, *token = NULL, *newest = NULL;
    char counter[256];
    char last_ids[FERRY_SHA256_HEX_LEN + 1] = "";
    json_t *seen_tokens = NULL;
    json_t *page = NULL;
    struct ferry_call call;
    struct handoff handoff = {0};
    int rc;

    memset(res, 0, sizeof(*res));
    int idx = ferry_runtime_instance(rt, system);
    if (idx < 0) {
        return ferry_err_set(err, FERRY_ECONFIG, "connector '%s' is not configured", system);
    }
    struct ferry_instance *inst = &rt->instances[idx];
    if (!inst->conn->list_changes) {
        return ferry_err_set(err, FERRY_EUNSUPPORTED, "connector %s cannot list changes", system);
    }
    rc = ferry_store_cursor_get(w->store, system, object, &stored, err);
    if (rc < 0) {
        return rc;
    }
    bool had_cursor = stored != NULL;
    since = ferry_strdup(since_override ? since_override : stored);
    if ((since_override || stored) && !since) {
        free(stored);
        return ferry_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    ferry_fmt(counter, sizeof(counter), "webhook_missed_total:%s:%s", system, object);
    char corr[33];
    char seed[256];
    ferry_fmt(seed, sizeof(seed), "poll:%s:%s:%s:%lld", system, object, since ? since : "",
              (long long)rt->clock());
    ferry_correlation_from(seed, corr);
    ferry_call_init(&call, rt, w, (size_t)idx, corr, 0);
    struct ferry_log_ctx lctx = {.correlation_id = corr, .connector = system, .object = object};
    ferry_log_ctx_set(&lctx);
    /* A page's request is audited in the commit of its jobs. */
    hold_audit(w, true);

    seen_tokens = json_object();
    if (!seen_tokens) {
        rc = ferry_err_set(err, FERRY_ENOMEM, "out of memory");
        goto cleanup;
    }
    for (;;) {
        ferry_err_clear(err);
        rc = inst->conn->list_changes(inst->state, &call, object, since, token, &page, err);
        if (rc < 0) {
            goto cleanup;
        }
        res->pages++;
        rc = ferry_store_begin(w->store, err);
        if (rc < 0) {
            goto cleanup;
        }
        size_t i;
        json_t *item;
        json_array_foreach(json_object_get(page, "items"), i, item)
        {
            char *rid = ferry_json_scalar_text(json_object_get(item, "id"));
            const char *modified = json_string_value(json_object_get(item, "modified"));
            const char *ev = json_string_value(json_object_get(item, "event"));
            json_t *record = json_object_get(item, "record");
            if (!rid || !json_is_object(record)) {
                free(rid);
                ferry_store_rollback(w->store);
                rc = ferry_err_set(err, FERRY_EPLUGIN, "connector %s: list item without id/record",
                                   system);
                goto cleanup;
            }
            res->records++;
            char dedupe[512], key[512], jcorr[33];
            ferry_fmt(dedupe, sizeof(dedupe), "poll:%s:%s:%s:%s", system, object, rid,
                      modified ? modified : "");
            ferry_fmt(key, sizeof(key), "%s:%s:%s", system, object, rid);
            ferry_correlation_from(dedupe, jcorr);
            json_t *payload =
                json_pack("{s:s, s:s, s:s, s:s, s:O}", "source", system, "object", object, "id",
                          rid, "event", ev ? ev : "updated", "record", record);
            /* A record the connector handed on as listed comes with its text:
             * the page's own bytes, not written a second time. */
            json_t *rtext = json_object_get(item, "record_text");
            char *text = !payload ? NULL
                         : json_is_string(rtext)
                             ? ferry_json_dumps_with(payload, record, json_string_value(rtext),
                                                     json_string_length(rtext))
                             : ferry_json_dumps(payload, false);
            free(rid);
            if (!text) {
                json_decref(payload);
                ferry_store_rollback(w->store);
                rc = ferry_err_set(err, FERRY_ENOMEM, "out of memory");
                goto cleanup;
            }
            struct ferry_job_new jn = {
                .dedupe_key = dedupe,
                .job_key = key,
                .kind = "sync",
                .payload = text,
                .correlation_id = jcorr,
                .now_ms = rt->clock(),
                .dedupe_window_ms = rt->cfg->dedupe_window_ms,
                .lane = FERRY_LANE_BACKFILL,
            };
            bool inserted = false, missed = false;
            int64_t job_id = 0;
            size_t text_len = strlen(text);
            rc = ferry_store_job_enqueue(w->store, &jn, &job_id, &inserted, err);
            free(text);
            if (rc == 0 && inserted) {
                json_object_del(item, "record"); /* the page reads only ids from here on */
                handoff_add(&handoff, job_id, text_len, payload, record);
            } else {
                json_decref(payload);
            }
            /* Without a cursor (the first poll) or from an explicit date, the
             * changes predate any webhook: nothing can have been missed. */
            if (rc == 0 && inserted && !since_override && had_cursor) {
                rc = judge_missed(w, key, modified, jn.now_ms, &missed, err);
            }
            if (rc == 0 && missed) {
                rc = ferry_store_counter_add(w->store, counter, 1, jn.now_ms, err);
                res->missed++;
            }
            if (rc < 0) {
                ferry_store_rollback(w->store);
                goto cleanup;
            }
            res->enqueued += inserted;
            if (modified && (!newest || strcmp(modified, newest) > 0)) {
                free(newest);
                newest = ferry_strdup(modified);
            }
        }
        /* A backfill from an earlier date never moves the cursor back. */
        if (newest && (!stored || strcmp(newest, stored) > 0)) {
            rc = ferry_store_cursor_put(w->store, system, object, newest, rt->clock(), err);
            if (rc < 0) {
                ferry_store_rollback(w->store);
                goto cleanup;
            }
            free(stored);
            stored = ferry_strdup(newest);
        }
        ferry_worker_flush_quota(w);
        rc = ferry_store_commit(w->store, err);
        if (rc < 0) {
            goto cleanup;
        }
        handoff_give(w->rt, &handoff);
        ferry_metrics_poll_page(system, object, page);
        const char *next = json_string_value(json_object_get(page, "next"));
        /* Loop guards: a remote that hands out a page token twice, or the same
         * records page after page, would otherwise keep this poll (and its
         * worker) busy forever. What was committed so far stays. */
        char ids_hash[FERRY_SHA256_HEX_LEN + 1] = "";
        json_t *ids = json_array();
        size_t k;
        json_t *it;
        json_array_foreach(json_object_get(page, "items"), k, it)
        {
            json_array_append(ids, json_object_get(it, "id"));
        }
        if (json_array_size(ids) > 0) {
            (void)ferry_json_hash(ids, ids_hash);
        }
        json_decref(ids);
        if (next && json_object_get(seen_tokens, next)) {
            rc = ferry_err_set(err, FERRY_EPROTO,
                               "connector %s returned page token '%.64s' twice; poll stopped",
                               system, next);
            goto cleanup;
        }
        if (ids_hash[0] && strcmp(ids_hash, last_ids) == 0) {
            rc = ferry_err_set(err, FERRY_EPROTO,
                               "connector %s returned the same %zu record(s) on two pages in a "
                               "row; poll stopped",
                               system, json_array_size(json_object_get(page, "items")));
            goto cleanup;
        }
        memcpy(last_ids, ids_hash, sizeof(last_ids));
        if (next) {
            json_object_set_new(seen_tokens, next, json_true());
        }
        free(token);
        token = ferry_strdup(next);
        json_decref(page);
        page = NULL;
        if (!token) {
            break;
        }
    }
    ferry_info("poll of %s %s%s%s: %lld record(s), %lld new job(s), %lld missed by webhooks, "
               "%d page(s)",
               system, object, since_override ? " since " : "",
               since_override ? since_override : "", (long long)res->records,
               (long long)res->enqueued, (long long)res->missed, res->pages);
    rc = 0;
cleanup:
    handoff_drop(&handoff);
    hold_audit(w, false);
    ferry_log_ctx_clear();
    json_decref(page);
    json_decref(seen_tokens);
    free(since);
    free(stored);
    free(token);
    free(newest);
    return rc;
}

/* ---- ferry plan: what a record would cause, written nowhere ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static json_t *field_report(const struct plan *p, const json_t *owner, const json_t *current)
{
    json_t *rows = json_array();
    /* Sorted, so that two plans of the same record read the same. */
    size_t n = json_object_size(p->fields), i = 0;
    const char **keys = calloc(n ? n : 1, sizeof(*keys));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)p->fields, k, v)
    {
        if (keys) {
            keys[i++] = k;
        }
    }
    if (keys) {
        qsort(keys, i, sizeof(*keys), cmp_str);
    }
    for (size_t j = 0; keys && j < i; j++) {
        k = keys[j];
        v = json_object_get(p->fields, k);
        json_t *old = p->base ? json_object_get(p->base, k) : NULL;
        const char *who = json_string_value(json_object_get(owner, k));
        const char *action;
        if (p->op == FERRY_WRITE_CREATE) {
            action = "set";
        } else if (who && strcmp(who, p->tsys) == 0) {
            action = "kept (target owns it)";
        } else if (p->write && json_object_get(p->write, k)) {
            /* The target changed this field since our last sync, and the
             * source changed it too: the write would overwrite a CRM edit. */
            json_t *now = current ? json_object_get(current, k) : NULL;
            action = (now && old && !json_equal(now, old) && !json_equal(now, v)) ? "conflict"
                                                                                  : "change";
        } else {
            action = "no change";
        }
        json_array_append_new(rows, json_pack("{s:s, s:s, s:O*, s:O}", "field", k, "action", action,
                                              "old", old, "new", v));
    }
    free(keys);
    return rows;
}

int ferry_pipeline_plan_record(struct ferry_worker *w, const char *system, const char *object,
                               const char *id, const char *event, const json_t *record, json_t *out,
                               struct ferry_err *err)
{
    struct ferry_runtime *rt = w->rt;
    struct ferry_job job = {.id = 0, .correlation_id = "plan", .job_key = ""};
    struct job_ctx jc = {
        .w = w, .job = &job, .src_system = system, .src_object = object, .src_id = id, .dry = true};
    json_t *fetched = NULL, *intents = NULL, *context = NULL;
    int rc;
    int idx = ferry_runtime_instance(rt, system);
    if (idx < 0) {
        return ferry_err_set(err, FERRY_ECONFIG, "connector '%s' is not configured", system);
    }
    if (!record) {
        struct ferry_instance *inst = &rt->instances[idx];
        struct ferry_call call;
        ferry_call_init(&call, rt, w, (size_t)idx, "plan", 0);
        call.quiet = true;
        if (!inst->conn->fetch) {
            return ferry_err_set(err, FERRY_EUNSUPPORTED, "connector %s cannot fetch", system);
        }
        rc = inst->conn->fetch(inst->state, &call, object, id, &fetched, err);
        if (rc < 0) {
            return rc;
        }
        record = fetched;
    }
    context = job_context(w, event, system, object, id, NULL, NULL);
    rc = ferry_mapping_set_run(w->mappings, system, object, event, record, context, &intents, err);
    size_t i;
    json_t *intent;
    json_array_foreach(intents, i, intent)
    {
        struct plan p;
        json_t *current = NULL;
        const char *op = json_string_value(json_object_get(intent, "op"));
        const char *mapping = json_string_value(json_object_get(intent, "mapping"));
        const char *rule = json_string_value(json_object_get(intent, "rule"));
        struct ferry_err perr = {0};
        if (rc < 0) {
            break;
        }
        int prc = resolve_refs(&jc, intent, &perr);
        if (prc == 0) {
            prc = plan_upsert(&jc, intent, false, &p, &perr);
        } else {
            memset(&p, 0, sizeof(p));
        }
        json_t *entry = json_pack("{s:s, s:s, s:s, s:s*, s:s*, s:O}", "source_object", object,
                                  "source_id", id, "event", event, "mapping", mapping, "rule", rule,
                                  "target", json_object_get(intent, "target"));
        if (prc < 0) {
            json_object_set_new(entry, "action", json_string("error"));
            json_object_set_new(entry, "error", json_string(perr.msg));
            json_array_append_new(out, entry);
            continue;
        }
        const char *action = p.op == FERRY_WRITE_CREATE   ? "create"
                             : p.op == FERRY_WRITE_UPDATE ? "update"
                                                          : "no change";
        if (p.op == FERRY_WRITE_CREATE && op && strcmp(op, "update") == 0) {
            action = "skip (no record to update)";
        }
        if (op && strcmp(op, "link") == 0) {
            action = p.dst_id ? "link (nothing written)" : "skip (no record to link)";
        }
        if (p.op == FERRY_WRITE_UPDATE && p.dst_id && strcmp(p.how, "link") == 0) {
            /* Read the target as it is now, to see edits made there since. */
            struct ferry_instance *ti = &rt->instances[p.idx];
            struct ferry_call call;
            ferry_call_init(&call, rt, w, (size_t)p.idx, "plan", 0);
            call.quiet = true;
            if (ti->conn->fetch &&
                ti->conn->fetch(ti->state, &call, p.tobj, p.dst_id, &current, &perr) < 0) {
                current = NULL;
            }
        }
        json_object_set_new(entry, "action", json_string(action));
        if (p.dst_id) {
            json_object_set_new(entry, "target_id", json_string(p.dst_id));
        }
        if (p.how[0]) {
            json_object_set_new(entry, "matched_by", json_string(p.how));
        }
        json_object_set_new(entry, "fields",
                            field_report(&p, json_object_get(intent, "owner"), current));
        size_t k;
        json_t *f;
        json_array_foreach(json_object_get(entry, "fields"), k, f)
        {
            if (strcmp(json_string_value(json_object_get(f, "action")), "conflict") == 0) {
                json_object_set_new(entry, "action", json_string("conflict"));
            }
        }
        json_array_append_new(out, entry);
        json_decref(current);
        plan_clear(&p);
    }
    json_decref(intents);
    json_decref(context);
    json_decref(fetched);
    return rc;
}
