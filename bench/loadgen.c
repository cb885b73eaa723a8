/* SPDX-License-Identifier: MIT */
/*
 * A small closed-loop HTTP/1.1 load generator for bench/bench_intake.py, used
 * when wrk (the Debian package the issue names) is not installed. It sends
 * what bench/intake.lua sends: valid BigCommerce webhooks with the secret
 * header and a hash of their own per request, over C keep-alive connections,
 * one request in flight per connection, from one epoll thread. Latency is
 * measured from the first byte sent to the last byte of the answer, as wrk
 * does; every latency is kept, so the percentiles are exact.
 *
 * usage: loadgen HOST PORT PATH SECRET CONNECTIONS SECONDS TAG
 * Prints one line "FERRY_BENCH_JSON {...}" with the same keys as intake.lua.
 * Exit status 1 when nothing could be sent at all.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define REQ_MAX 1024
#define RESP_MAX 16384

struct lg_conn {
    int fd;
    int id;
    char req[REQ_MAX];
    size_t req_len, req_off;
    char resp[RESP_MAX];
    size_t resp_len;
    int64_t started_ns;
    uint64_t n;
};

struct lg_stats {
    uint64_t requests, status_errors, read_errors, write_errors, connect_errors;
    uint32_t *lat_us;
    size_t nlat, cap;
};

static struct sockaddr_in g_addr;
static const char *g_host, *g_path, *g_secret;
static unsigned g_tag;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void build_request(struct lg_conn *c)
{
    char body[512];
    c->n++;
    int blen = snprintf(body, sizeof(body),
                        "{\"scope\":\"store/customer/updated\",\"store_id\":\"1000001\","
                        "\"data\":{\"type\":\"customer\",\"id\":%" PRIu64 "},"
                        "\"hash\":\"%08x%08x%024" PRIx64 "\",\"created_at\":%lld,"
                        "\"producer\":\"stores/teststore\"}",
                        (uint64_t)(c->id + 1) * 100000000u + c->n, g_tag, (unsigned)(c->id + 1),
                        c->n, (long long)time(NULL));
    c->req_len = (size_t)snprintf(c->req, sizeof(c->req),
                                  "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                                  "X-Ferry-Secret: %s\r\nContent-Length: %d\r\n\r\n%s",
                                  g_path, g_host, g_secret, blen, body);
    c->req_off = 0;
    c->resp_len = 0;
}

static int open_conn(int ep, struct lg_conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&g_addr, sizeof(g_addr)) < 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    build_request(c);
    c->started_ns = now_ns();
    return 0;
}

static void close_conn(int ep, struct lg_conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
}

static void record(struct lg_stats *st, int64_t ns)
{
    if (st->nlat == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 65536;
        uint32_t *p = realloc(st->lat_us, cap * sizeof(*p));
        if (!p) {
            return; /* the count stays right; only this latency is lost */
        }
        st->lat_us = p;
        st->cap = cap;
    }
    st->lat_us[st->nlat++] = (uint32_t)(ns / 1000);
}

/* 1: a whole answer is in the buffer (status in *status); 0: not yet; -1: malformed. */
static int parse_response(struct lg_conn *c, int *status)
{
    c->resp[c->resp_len < RESP_MAX ? c->resp_len : RESP_MAX - 1] = '\0';
    char *end = strstr(c->resp, "\r\n\r\n");
    if (!end) {
        return c->resp_len >= RESP_MAX - 1 ? -1 : 0;
    }
    if (strncmp(c->resp, "HTTP/1.", 7) != 0 || c->resp_len < 12) {
        return -1;
    }
    *status = atoi(c->resp + 9);
    size_t clen = 0;
    for (char *p = c->resp; p < end; p++) {
        if ((p == c->resp || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
            clen = (size_t)strtoul(p + 15, NULL, 10);
        }
    }
    size_t need = (size_t)(end + 4 - c->resp) + clen;
    return c->resp_len >= need ? 1 : 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t pct(const struct lg_stats *st, double p)
{
    if (st->nlat == 0) {
        return 0;
    }
    size_t i = (size_t)(p / 100.0 * (double)(st->nlat - 1) + 0.5);
    return st->lat_us[i < st->nlat ? i : st->nlat - 1];
}

int main(int argc, char **argv)
{
    static struct lg_conn conns[MAX_CONNS];
    struct lg_stats st = {0};
    int ep = -1, status = 1;

    if (argc != 8) {
        fprintf(stderr, "usage: %s HOST PORT PATH SECRET CONNECTIONS SECONDS TAG\n", argv[0]);
        return 2;
    }
    g_host = argv[1];
    g_path = argv[3];
    g_secret = argv[4];
    int nconn = atoi(argv[5]);
    double seconds = strtod(argv[6], NULL);
    g_tag = (unsigned)strtoul(argv[7], NULL, 10);
    if (nconn < 1 || nconn > MAX_CONNS || !(seconds > 0)) {
        fprintf(stderr, "loadgen: CONNECTIONS must be 1..%d and SECONDS positive\n", MAX_CONNS);
        return 2;
    }
    memset(&g_addr, 0, sizeof(g_addr));
    g_addr.sin_family = AF_INET;
    g_addr.sin_port = htons((uint16_t)atoi(argv[2]));
    if (inet_pton(AF_INET, g_host, &g_addr.sin_addr) != 1) {
        fprintf(stderr, "loadgen: HOST must be an IPv4 address\n");
        return 2;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        perror("loadgen: epoll_create1");
        return 1;
    }
    for (int i = 0; i < nconn; i++) {
        conns[i].id = i;
        conns[i].fd = -1;
        if (open_conn(ep, &conns[i]) < 0) {
            st.connect_errors++;
        }
    }
    int64_t t0 = now_ns(), stop_at = t0 + (int64_t)(seconds * 1e9);
    struct epoll_event evs[64];
    while (now_ns() < stop_at) {
        int n = epoll_wait(ep, evs, 64, 100);
        if (n < 0 && errno != EINTR) {
            perror("loadgen: epoll_wait");
            goto cleanup;
        }
        for (int k = 0; k < n; k++) {
            struct lg_conn *c = evs[k].data.ptr;
            if (c->fd < 0) {
                continue;
            }
            if ((evs[k].events & EPOLLOUT) && c->req_off < c->req_len) {
                ssize_t w = send(c->fd, c->req + c->req_off, c->req_len - c->req_off, MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN) {
                    st.write_errors++;
                    close_conn(ep, c);
                    if (open_conn(ep, c) < 0) {
                        st.connect_errors++;
                    }
                    continue;
                }
                if (w > 0) {
                    c->req_off += (size_t)w;
                }
                if (c->req_off == c->req_len) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = recv(c->fd, c->resp + c->resp_len, RESP_MAX - 1 - c->resp_len, 0);
                if (r < 0 && errno == EAGAIN) {
                    continue;
                }
                int code = 0, done = r > 0 ? (c->resp_len += (size_t)r, parse_response(c, &code))
                                           : -1;
                if (done == 0) {
                    continue;
                }
                if (done < 0) {
                    st.read_errors++;
                    close_conn(ep, c);
                    if (open_conn(ep, c) < 0) {
                        st.connect_errors++;
                    }
                    continue;
                }
                int64_t t = now_ns();
                st.requests++;
                if (code < 200 || code >= 400) {
                    st.status_errors++;
                }
                record(&st, t - c->started_ns);
                /* One answer per request: pipelining is not what a sender does. */
                build_request(c);
                c->started_ns = now_ns();
                struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
        }
    }
    int64_t took = now_ns() - t0;
    qsort(st.lat_us, st.nlat, sizeof(*st.lat_us), cmp_u32);
    double mean = 0;
    for (size_t i = 0; i < st.nlat; i++) {
        mean += st.lat_us[i];
    }
    mean = st.nlat ? mean / (double)st.nlat : 0;
    printf("FERRY_BENCH_JSON {\"tool\":\"loadgen\",\"requests\":%" PRIu64 ",\"duration_us\":%" PRId64
           ",\"connect_errors\":%" PRIu64 ",\"read_errors\":%" PRIu64 ",\"write_errors\":%" PRIu64
           ",\"status_errors\":%" PRIu64 ",\"timeouts\":0,\"p50_us\":%u,\"p99_us\":%u,"
           "\"p999_us\":%u,\"max_us\":%u,\"mean_us\":%.1f}\n",
           st.requests, took / 1000, st.connect_errors, st.read_errors, st.write_errors,
           st.status_errors, pct(&st, 50), pct(&st, 99), pct(&st, 99.9),
           st.nlat ? st.lat_us[st.nlat - 1] : 0, mean);
    status = st.requests > 0 ? 0 : 1;
cleanup:
    for (int i = 0; i < nconn; i++) {
        close_conn(ep, &conns[i]);
    }
    close(ep);
    free(st.lat_us);
    return status;
}
