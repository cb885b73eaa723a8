/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a BigCommerce webhook delivery through the connector's own
 * descriptor (verify_webhook, then decode_webhook), exactly as the daemon's
 * listener hands it over: a NUL-terminated body and the request headers.
 * Built with the plugin's sources and the fake host (tests/plugins), never
 * with the core, like the plugin tests.
 *
 * Input: "Name: value" header lines, a blank line, then the body; when the
 * input does not start that way it is all body. The webhook secret header
 * is added unless the input brings its own, so that both the secret check
 * and the decoder behind it are reached. Two connector instances see every
 * input: one with the default signature setting and one that requires a
 * Standard Webhooks signature (keyed with CLIENT_SECRET).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "fake_host.h"
#include "ferry/plugin.h"

#define SECRET        "fuzz-webhook-secret"
#define CLIENT_SECRET "fuzz-client-secret"
#define MAX_HEADERS   32
#define NOW_MS        1700000000000LL

int ferry_connector_entry(const struct ferry_host_api *host, const struct ferry_connector **out);
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct ferry_connector *conn;
static void *plain_state, *signed_state;

static void *open_with(const char *text)
{
    struct ferry_err err = {0};
    void *state = NULL;
    json_t *cfg = json_loads(text, 0, NULL);
    if (!cfg || conn->open(fake_host_api(), fake_host_call(), cfg, &state, &err) != 0) {
        abort();
    }
    json_decref(cfg);
    return state;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (ferry_connector_entry(fake_host_api(), &conn) != 0) {
        abort();
    }
    fake_host_set_now(NOW_MS);
    plain_state = open_with("{\"store_hash\": \"abc123\", \"access_token\": \"t\","
                            " \"webhook_secret\": \"" SECRET "\"}");
    signed_state = open_with("{\"store_hash\": \"abc123\", \"access_token\": \"t\","
                             " \"webhook_secret\": \"" SECRET "\", \"signature\": \"required\","
                             " \"client_secret\": \"" CLIENT_SECRET "\"}");
    return 0;
}

/* Splits "Name: value\n" lines off the front of buf (modified in place); returns the body. */
static char *split_headers(char *buf, size_t size, struct ferry_http_header *h, size_t *n,
                           size_t *body_len)
{
    char *p = buf, *end = buf + size;
    char *blank = strstr(buf, "\n\n");
    *n = 0;
    if (!blank || !memchr(buf, ':', (size_t)(blank - buf)) || (size_t)(blank - buf) > 4096) {
        *body_len = size;
        return buf;
    }
    while (p < blank && *n < MAX_HEADERS) {
        char *nl = memchr(p, '\n', (size_t)(blank + 1 - p));
        char *colon = memchr(p, ':', (size_t)(nl - p));
        *nl = '\0';
        if (colon) {
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ') {
                v++;
            }
            h[*n].name = p;
            h[*n].value = v;
            (*n)++;
        }
        p = nl + 1;
    }
    *body_len = (size_t)(end - (blank + 2));
    return blank + 2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ferry_http_header headers[MAX_HEADERS + 1];
    size_t nheaders = 0, body_len = 0;
    /* The listener's copy is NUL-terminated; so is this one. */
    char *buf = malloc(size + 1);
    if (!buf) {
        return 0;
    }
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *body = split_headers(buf, size, headers, &nheaders, &body_len);
    bool has_secret = false;
    for (size_t i = 0; i < nheaders; i++) {
        has_secret = has_secret || strcasecmp(headers[i].name, "X-Ferry-Secret") == 0;
    }
    if (!has_secret) {
        headers[nheaders].name = "X-Ferry-Secret";
        headers[nheaders].value = SECRET;
        nheaders++;
    }
    struct ferry_webhook wh = {
        .path = "",
        .headers = headers,
        .nheaders = nheaders,
        .body = body,
        .body_len = body_len,
        .received_at_ms = NOW_MS,
    };
    void *states[] = {plain_state, signed_state};
    for (size_t s = 0; s < 2; s++) {
        struct ferry_err err = {0};
        json_t *events = NULL;
        (void)conn->verify_webhook(states[s], fake_host_loop_call(), &wh, &err);
        memset(&err, 0, sizeof(err));
        int rc = conn->decode_webhook(states[s], fake_host_loop_call(), &wh, &events, &err);
        /* The host relies on this: success means an array of complete events. */
        if (rc == 0 && !json_is_array(events)) {
            abort();
        }
        size_t i;
        json_t *ev;
        json_array_foreach(events, i, ev)
        {
            if (!json_is_string(json_object_get(ev, "object")) ||
                !json_is_string(json_object_get(ev, "id")) ||
                !json_is_string(json_object_get(ev, "event"))) {
                abort();
            }
        }
        json_decref(events);
        if (rc < 0 && err.msg[0] == '\0') {
            abort(); /* every refusal explains itself */
        }
    }
    free(buf);
    return 0;
}
