/* SPDX-License-Identifier: MIT */
/*
 * A small load generator for the overload test (test_overload.py): N
 * BigCommerce-shaped webhooks, each with its own hash, sent once each over T
 * keep-alive connections as fast as the listener answers. It never retries:
 * what it measures is which deliveries the daemon acknowledged, so that the
 * test can check each acknowledged one against the state DB.
 *
 * Output: one line "<index> <status>" per webhook in --out (status 0: no
 * answer, the connection failed), and a summary on stdout.
 *
 * usage: ferry_flood --port P --count N --threads T --secret S --out FILE
 *                    [--host 127.0.0.1] [--path /webhooks/bigcommerce]
 *                    [--header X-Ferry-Secret] [--tag HEX8] [--id-base N]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define RESP_MAX  65536
#define BODY_MAX  512
#define REQ_MAX   2048
#define IO_WAIT_S 60

struct opts {
    const char *host;
    int port;
    const char *path;
    const char *header;
    const char *secret;
    const char *out;
    long count;
    int threads;
    unsigned tag;
    long id_base;
};

static struct opts o = {
    .host = "127.0.0.1",
    .path = "/webhooks/bigcommerce",
    .header = "X-Ferry-Secret",
    .threads = 16,
    .tag = 0x5eed0001u,
    .id_base = 1,
};
static atomic_long next_index;
static uint16_t *statuses;

static int connect_once(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
    struct timeval tv = {.tv_sec = IO_WAIT_S};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    if (inet_pton(AF_INET, o.host, &sa.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    /* Small requests, one at a time: Nagle would only add delayed-ACK waits. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* A daemon that stops answering must not hang the test forever. */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Value of header `name` in the NUL-terminated head, or NULL. */
static const char *find_header(const char *head, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 3 + n;
            while (*v == ' ' || *v == '\t') {
                v++;
            }
            return v;
        }
    }
    return NULL;
}

/*
 * Reads one response; returns its status (> 0) or 0 when the connection
 * failed. *keep says whether the connection may carry another request.
 */
static int read_response(int fd, char *buf, bool *keep)
{
    size_t have = 0;
    char *end = NULL;
    *keep = false;
    while (!end) {
        if (have + 1 >= RESP_MAX) {
            return 0;
        }
        ssize_t r = recv(fd, buf + have, RESP_MAX - 1 - have, 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return 0;
        }
        have += (size_t)r;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || status < 100) {
        return 0;
    }
    *end = '\0';
    const char *cl = find_header(buf, "Content-Length");
    const char *conn = find_header(buf, "Connection");
    size_t head_len = (size_t)(end - buf) + 4;
    size_t want = cl ? (size_t)strtoul(cl, NULL, 10) : 0;
    size_t body = have - head_len;
    while (body < want) {
        char sink[4096];
        size_t ask = want - body < sizeof(sink) ? want - body : sizeof(sink);
        ssize_t r = recv(fd, sink, ask, 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return status; /* answered, but the connection is done */
        }
        body += (size_t)r;
    }
    *keep = cl != NULL && !(conn && strncasecmp(conn, "close", 5) == 0);
    return status;
}

static void *worker(void *arg)
{
    char *resp = malloc(RESP_MAX);
    char body[BODY_MAX], req[REQ_MAX];
    int fd = -1;
    (void)arg;
    if (!resp) {
        return NULL;
    }
    for (;;) {
        long i = atomic_fetch_add(&next_index, 1);
        if (i >= o.count) {
            break;
        }
        int blen = snprintf(body, sizeof(body),
                            "{\"scope\":\"store/customer/updated\",\"store_id\":\"1000001\","
                            "\"data\":{\"type\":\"customer\",\"id\":%ld},"
                            "\"hash\":\"%08x%032lx\",\"created_at\":%ld,"
                            "\"producer\":\"stores/teststore\"}",
                            o.id_base + i, o.tag, (unsigned long)i, (long)time(NULL));
        int rlen = snprintf(req, sizeof(req),
                            "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                            "%s: %s\r\nContent-Length: %d\r\n\r\n%s",
                            o.path, o.host, o.port, o.header, o.secret, blen, body);
        if (blen < 0 || rlen < 0 || (size_t)rlen >= sizeof(req)) {
            statuses[i] = 0;
            continue;
        }
        if (fd < 0) {
            fd = connect_once();
        }
        bool keep = false;
        int status = 0;
        if (fd >= 0 && send_all(fd, req, (size_t)rlen)) {
            status = read_response(fd, resp, &keep);
        }
        statuses[i] = (uint16_t)status;
        if (!keep && fd >= 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    free(resp);
    return NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: ferry_flood --port P --count N --threads T --secret S --out FILE\n"
                    "                   [--host H] [--path P] [--header NAME] [--tag HEX8]"
                    " [--id-base N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    for (int a = 1; a + 1 < argc; a += 2) {
        const char *k = argv[a], *v = argv[a + 1];
        if (strcmp(k, "--port") == 0) {
            o.port = atoi(v);
        } else if (strcmp(k, "--count") == 0) {
            o.count = atol(v);
        } else if (strcmp(k, "--threads") == 0) {
            o.threads = atoi(v);
        } else if (strcmp(k, "--secret") == 0) {
            o.secret = v;
        } else if (strcmp(k, "--out") == 0) {
            o.out = v;
        } else if (strcmp(k, "--host") == 0) {
            o.host = v;
        } else if (strcmp(k, "--path") == 0) {
            o.path = v;
        } else if (strcmp(k, "--header") == 0) {
            o.header = v;
        } else if (strcmp(k, "--tag") == 0) {
            o.tag = (unsigned)strtoul(v, NULL, 16);
        } else if (strcmp(k, "--id-base") == 0) {
            o.id_base = atol(v);
        } else {
            return usage();
        }
    }
    if (argc % 2 != 1 || o.port <= 0 || o.count <= 0 || o.threads <= 0 || !o.secret || !o.out) {
        return usage();
    }
    statuses = calloc((size_t)o.count, sizeof(*statuses));
    pthread_t *tids = calloc((size_t)o.threads, sizeof(*tids));
    if (!statuses || !tids) {
        fprintf(stderr, "ferry_flood: out of memory\n");
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int started = 0;
    for (int t = 0; t < o.threads; t++) {
        if (pthread_create(&tids[t], NULL, worker, NULL) != 0) {
            break;
        }
        started++;
    }
    for (int t = 0; t < started; t++) {
        pthread_join(tids[t], NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

    FILE *f = fopen(o.out, "w");
    if (!f) {
        fprintf(stderr, "ferry_flood: %s: %s\n", o.out, strerror(errno));
        return 1;
    }
    long ok = 0, refused = 0, other = 0, failed = 0;
    for (long i = 0; i < o.count; i++) {
        int s = statuses[i];
        fprintf(f, "%ld %d\n", i, s);
        if (s >= 200 && s < 300) {
            ok++;
        } else if (s == 503) {
            refused++;
        } else if (s == 0) {
            failed++;
        } else {
            other++;
        }
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "ferry_flood: %s: %s\n", o.out, strerror(errno));
        return 1;
    }
    printf("sent %ld in %.3f s over %d connection(s): %ld acknowledged (%.0f/s), %ld refused "
           "(503), %ld other status, %ld without an answer\n",
           o.count, secs, started, ok, secs > 0 ? (double)ok / secs : 0.0, refused, other, failed);
    free(statuses);
    free(tids);
    return started == o.threads ? 0 : 1;
}
