/*
 * cli: the command line every server shares.
 *
 *     server [--host ADDR] [--port N] [-v|--verbose] [--help] [chapter options]
 *
 * A chapter lists its own options in a table; each one is a number with a range
 * (--pool N) or a flag (--edge, stored as 1). Options whose value is one word
 * out of a list (--balance reuseport|acceptor) go in a second table, choices. "--name value" and "--name=value"
 * both work. cli_parse never prints: on a bad option it fills cli->error with a
 * one-line message naming the option, and cli_exit_code prints that (or the
 * help) and returns the status the program should exit with.
 */
#ifndef CLI_H
#define CLI_H

struct cli_option {
    const char *name;       /* "--pool" */
    const char *metavar;    /* "N"; NULL makes it a flag */
    const char *help;       /* one line for --help */
    long min, max;          /* accepted range of the number */
    long *value;            /* where the number (or 1 for a flag) is stored */
};

struct cli_choice {
    const char *name;       /* "--balance" */
    const char *metavar;    /* "MODE" */
    const char *help;       /* one line for --help */
    const char *const *words;   /* the accepted values, ending with NULL */
    long *value;            /* where the index of the word given is stored */
};

struct cli {
    /* Set by the caller before cli_parse: */
    const char *program;                /* "server" */
    const char *about;                  /* one line: what this program is */
    const struct cli_option *options;   /* the chapter's own, ending with {0} */
    const struct cli_choice *choices;   /* the same for words (may be NULL), ending with {0} */
    int is_client;                      /* --host/--port name the server to reach */
    const char *args_usage;             /* e.g. "[MESSAGE]": words that are not options
                                           are allowed (NULL: refused) */
    int default_port;                   /* 0: 8888 */
    /* Filled by cli_parse (these defaults first): */
    const char *host;                   /* "127.0.0.1" */
    int port;                           /* default_port; 0 lets the kernel choose */
    int verbose;                        /* -v: trace every event on stderr */
    char **args;                        /* the words that are not options... */
    int nargs;                          /* ...and how many (only with args_usage) */
    char error[160];
};

enum { CLI_OK, CLI_HELP, CLI_ERROR };

/* Returns CLI_OK, CLI_HELP (--help was asked for) or CLI_ERROR (see cli->error). */
int cli_parse(struct cli *cli, int argc, char **argv);

/* For CLI_HELP: print the usage on stdout, return 0. For CLI_ERROR: print
 * "program: error (try --help)" on stderr, return 2. */
int cli_exit_code(const struct cli *cli, int parse_result);

#endif
