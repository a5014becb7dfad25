#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

/* Parse a whole decimal number within [min, max]: no sign games, no trailing junk. */
static int parse_number(const char *text, long min, long max, long *out)
{
    char *end;
    long v;

    if (*text == '\0' || *text == ' ' || *text == '+')
        return -1;
    errno = 0;
    v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int fail(struct cli *cli, const char *fmt, ...);

/* name is a choice of cli's: store the index of its word, or fail naming them all. */
static int parse_choice(struct cli *cli, const struct cli_choice *ch, const char *value)
{
    char expected[128] = "";            /* "a, b or c" */
    size_t used = 0;
    for (long i = 0; ch->words[i] != NULL; i++) {
        if (strcmp(ch->words[i], value) == 0) {
            *ch->value = i;
            return CLI_OK;
        }
        const char *sep = i == 0 ? "" : ch->words[i + 1] == NULL ? " or " : ", ";
        int n = snprintf(expected + used, sizeof expected - used, "%s%s", sep, ch->words[i]);
        if (n > 0 && (size_t)n < sizeof expected - used)
            used += (size_t)n;
    }
    return fail(cli, "bad value '%s' for %s: expected %s", value, ch->name, expected);
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int fail(struct cli *cli, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cli->error, sizeof cli->error, fmt, ap);
    va_end(ap);
    return CLI_ERROR;
}

/* Take the option's value from "--name=value" or from the next argument. */
static const char *option_value(const char *inline_value, int argc, char **argv, int *i)
{
    if (inline_value != NULL)
        return inline_value;
    if (*i + 1 < argc)
        return argv[++*i];
    return NULL;
}

int cli_parse(struct cli *cli, int argc, char **argv)
{
    cli->host = "127.0.0.1";
    cli->port = cli->default_port ? cli->default_port : 8888;
    cli->verbose = 0;
    cli->error[0] = '\0';
    cli->args = argv + argc;
    cli->nargs = 0;

    for (int i = 1; i < argc; i++) {
        char name[64];
        if (cli->args_usage != NULL && argv[i][0] != '-') {
            /* The first word that is not an option: it and the rest are args. */
            cli->args = argv + i;
            cli->nargs = argc - i;
            break;
        }
        const char *arg = argv[i], *eq = strchr(arg, '='), *value;
        size_t len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);

        if (len >= sizeof name)
            return fail(cli, "unknown option '%s'", arg);
        memcpy(name, arg, len);
        name[len] = '\0';
        const char *inline_value = eq != NULL ? eq + 1 : NULL;

        if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0)
            return CLI_HELP;
        if (strcmp(name, "-v") == 0 || strcmp(name, "--verbose") == 0) {
            if (inline_value != NULL)
                return fail(cli, "option '%s' takes no value", name);
            cli->verbose = 1;
            trace_enabled = 1;
            continue;
        }
        if (strcmp(name, "--host") == 0) {
            value = option_value(inline_value, argc, argv, &i);
            if (value == NULL || *value == '\0')
                return fail(cli, "option '%s' needs an address", name);
            cli->host = value;
            continue;
        }
        if (strcmp(name, "--port") == 0) {
            long port;
            value = option_value(inline_value, argc, argv, &i);
            if (value == NULL)
                return fail(cli, "option '%s' needs a number", name);
            if (parse_number(value, 0, 65535, &port) < 0)
                return fail(cli, "bad port '%s': expected a number from 0 to 65535", value);
            cli->port = (int)port;
            continue;
        }

        const struct cli_choice *ch = cli->choices;
        while (ch != NULL && ch->name != NULL && strcmp(ch->name, name) != 0)
            ch++;
        if (ch != NULL && ch->name != NULL) {
            value = option_value(inline_value, argc, argv, &i);
            if (value == NULL)
                return fail(cli, "option '%s' needs a value (%s)", name, ch->metavar);
            if (parse_choice(cli, ch, value) != CLI_OK)
                return CLI_ERROR;
            continue;
        }

        const struct cli_option *opt = cli->options;
        while (opt != NULL && opt->name != NULL && strcmp(opt->name, name) != 0)
            opt++;
        if (opt == NULL || opt->name == NULL)
            return fail(cli, "unknown option '%s'", arg);
        if (opt->metavar == NULL) {
            if (inline_value != NULL)
                return fail(cli, "option '%s' takes no value", name);
            *opt->value = 1;
            continue;
        }
        value = option_value(inline_value, argc, argv, &i);
        if (value == NULL)
            return fail(cli, "option '%s' needs a value (%s)", name, opt->metavar);
        if (parse_number(value, opt->min, opt->max, opt->value) < 0)
            return fail(cli, "bad value '%s' for %s: expected a number from %ld to %ld",
                        value, name, opt->min, opt->max);
    }
    return CLI_OK;
}

int cli_exit_code(const struct cli *cli, int parse_result)
{
    if (parse_result == CLI_ERROR) {
        fprintf(stderr, "%s: %s (try --help)\n", cli->program, cli->error);
        return 2;
    }
    printf("usage: %s [--host ADDR] [--port N] [-v|--verbose] [--help]", cli->program);
    for (const struct cli_option *o = cli->options; o != NULL && o->name != NULL; o++)
        printf(o->metavar ? " [%s %s]" : " [%s]", o->name, o->metavar ? o->metavar : "");
    for (const struct cli_choice *ch = cli->choices; ch != NULL && ch->name != NULL; ch++)
        printf(" [%s %s]", ch->name, ch->metavar);
    printf("%s%s\n%s\n\n", cli->args_usage ? " " : "", cli->args_usage ? cli->args_usage : "", cli->about);
    int port = cli->default_port ? cli->default_port : 8888;
    if (cli->is_client) {
        printf("  --host ADDR     the server's address (default 127.0.0.1; ::1 for IPv6)\n");
        printf("  --port N        the server's port (default %d)\n", port);
    } else {
        printf("  --host ADDR     address to listen on (default 127.0.0.1; ::1 for IPv6)\n");
        printf("  --port N        port to listen on (default %d; 0 lets the kernel choose)\n", port);
    }
    printf("  -v, --verbose   trace every event on stderr\n");
    printf("  --help          show this help\n");
    for (const struct cli_option *o = cli->options; o != NULL && o->name != NULL; o++) {
        char left[40];
        snprintf(left, sizeof left, "%s %s", o->name, o->metavar ? o->metavar : "");
        printf("  %-15s %s\n", left, o->help);
    }
    for (const struct cli_choice *ch = cli->choices; ch != NULL && ch->name != NULL; ch++) {
        char left[40];
        snprintf(left, sizeof left, "%s %s", ch->name, ch->metavar);
        printf("  %-15s %s\n", left, ch->help);
    }
    return 0;
}
