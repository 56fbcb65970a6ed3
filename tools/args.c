/* args.c — walking the command line and parsing option values.
 *
 * Options take their value as the next argument or after '=' ("--seed 3",
 * "--seed=3").  Values are parsed strictly: "12abc", "", an overflowing or
 * negative count is refused rather than read as a prefix or wrapped. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_args_value(cli_args *a, const char *name, const char **value) {
    const char *arg = a->argv[a->i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0) return 0;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        a->i++;
        return 1;
    }
    if (arg[n] != '\0') return 0;
    if (a->i + 1 >= a->argc) {
        cli_fail(CLI_EXIT_USAGE, "%s: option %s needs a value (see 'kiln help %s')", a->command, name, a->command);
        return -1;
    }
    *value = a->argv[a->i + 1];
    a->i += 2;
    return 1;
}

bool cli_args_flag(cli_args *a, const char *name) {
    if (strcmp(a->argv[a->i], name) != 0) return false;
    a->i++;
    return true;
}

int cli_assign_add(cli_assign_list *list, const char *option, const char *text) {
    const char *eq = strchr(text, '=');
    if (!eq || eq == text)
        return cli_fail(CLI_EXIT_USAGE, "%s '%s': expected NAME=VALUE", option, text);
    if (list->count == list->capacity) {
        int32_t cap = list->capacity ? list->capacity * 2 : 4;
        cli_assign *items = realloc(list->items, sizeof *items * (size_t)cap);
        if (!items) return cli_fail(CLI_EXIT_FAILURE, "out of memory");
        list->items = items;
        list->capacity = cap;
    }
    size_t n = (size_t)(eq - text);
    char *name = malloc(n + 1);
    if (!name) return cli_fail(CLI_EXIT_FAILURE, "out of memory");
    memcpy(name, text, n);
    name[n] = '\0';
    list->items[list->count++] = (cli_assign){name, eq + 1};
    return CLI_EXIT_OK;
}

void cli_assign_list_free(cli_assign_list *list) {
    for (int32_t i = 0; i < list->count; i++) free(list->items[i].name);
    free(list->items);
    *list = (cli_assign_list){0};
}

int cli_string_list_add(cli_string_list *list, const char *s) {
    if (list->count == list->capacity) {
        int32_t cap = list->capacity ? list->capacity * 2 : 4;
        const char **items = realloc(list->items, sizeof *items * (size_t)cap);
        if (!items) return cli_fail(CLI_EXIT_FAILURE, "out of memory");
        list->items = items;
        list->capacity = cap;
    }
    list->items[list->count++] = s;
    return CLI_EXIT_OK;
}

void cli_string_list_free(cli_string_list *list) {
    free(list->items);
    *list = (cli_string_list){0};
}

bool cli_parse_int(const char *text, int64_t min, int64_t max, int64_t *out) {
    /* strtoll skips leading spaces and accepts a sign: insist on a digit
     * (or a '-' then a digit) so " 5" and "+5" are not quietly taken. */
    if (!text || !((text[0] >= '0' && text[0] <= '9') || (text[0] == '-' && text[1] >= '0' && text[1] <= '9')))
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end != '\0' || v < min || v > max) return false;
    *out = v;
    return true;
}

bool cli_parse_u64(const char *text, uint64_t *out) {
    if (!text || text[0] < '0' || text[0] > '9') return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end != '\0') return false;
    *out = v;
    return true;
}

bool cli_parse_device(const char *text, kiln_device *out) {
    if (strcmp(text, "cpu") == 0) {
        *out = (kiln_device){KILN_DEVICE_CPU, 0};
        return true;
    }
    if (strcmp(text, "cuda") == 0) {
        *out = (kiln_device){KILN_DEVICE_CUDA, 0};
        return true;
    }
    int64_t index;
    if (strncmp(text, "cuda:", 5) == 0 && cli_parse_int(text + 5, 0, INT32_MAX, &index)) {
        *out = (kiln_device){KILN_DEVICE_CUDA, (int32_t)index};
        return true;
    }
    return false;
}

bool cli_parse_dims(const char *text, int32_t *rank, int64_t dims[KILN_MAX_RANK]) {
    *rank = 0;
    if (text[0] == '\0' || strcmp(text, "scalar") == 0) return true;
    const char *p = text;
    for (;;) {
        if (*rank == KILN_MAX_RANK) return false;
        if (*p < '0' || *p > '9') return false;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || v < 0) return false;
        dims[(*rank)++] = v;
        if (*end == '\0') return true;
        if (*end != 'x' && *end != ',') return false;
        p = end + 1;
    }
}
