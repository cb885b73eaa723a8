/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: loading a configuration file (ferry_config_load), which
 * runs the file as Lua in a library-less state with env() and file(), then
 * walks the result against the key set. Any file must load or fail with a
 * FERRY_ECONFIG message; a runaway file must hit the instruction or memory
 * limit, never hang or crash.
 *
 * The input is written to a file in a private directory that also holds a
 * secret file, and two environment variables are set, so that env() and
 * file() in the seeds find something.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char secret[128];
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof(dir), "/tmp/ferry-fuzz-config-XXXXXX");
    if (!mkdtemp(dir)) {
        abort();
    }
    snprintf(path, sizeof(path), "%s/ferry.lua", dir);
    snprintf(secret, sizeof(secret), "%s/secret.txt", dir);
    FILE *f = fopen(secret, "w");
    if (!f || fputs("file-secret\n", f) < 0 || fclose(f) != 0) {
        abort();
    }
    setenv("FERRY_FUZZ_TOKEN", "env-secret", 1);
    setenv("FERRY_FUZZ_EMPTY", "", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ferry_config *cfg = NULL;
    struct ferry_err err = {0};
    FILE *f = fopen(path, "wb");
    if (!f) {
        abort();
    }
    if (size && fwrite(data, 1, size, f) != size) {
        abort();
    }
    if (fclose(f) != 0) {
        abort();
    }
    int rc = ferry_config_load(&cfg, path, &err);
    if (rc == 0 ? cfg == NULL : (cfg != NULL || err.msg[0] == '\0')) {
        abort(); /* success is a config; failure is a message */
    }
    ferry_config_free(cfg);
    return 0;
}
