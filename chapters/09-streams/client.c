/*
 * Chapter 09 — client: asyncio's echo client, on the stream API.
 *
 *     reader, writer = await asyncio.open_connection(host, port)
 *     writer.write(message)                     stream_write
 *     await writer.drain()                      stream_drain
 *     data = await reader.read(100)             stream_read, until end of stream
 *     writer.close(); await writer.wait_closed()
 *
 * The message is the arguments, or standard input if there are none. After
 * sending it the client half-closes (write_eof), so a server that answers
 * "until the end" (like the echo servers here) knows it has everything; it
 * then prints all that comes back until the server closes. Works against
 * any TCP service.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "io.h"
#include "stream.h"

static char *message;
static size_t message_len;
static int exit_status = 1;
static long timeout_ms = 10000;

static void on_closed(struct stream *s, int status, void *arg)
{
    (void)s; (void)status; (void)arg;
}

static void finish(struct stream *s, int status)
{
    exit_status = status;
    stream_close(s);
    stream_wait_closed(s, on_closed, NULL);
}

static void on_data(struct stream *s, int status, const char *data, size_t len, void *arg)
{
    if (status != 0) {
        fprintf(stderr, "client: %s\n", stream_strerror(status));
        finish(s, 1);
        return;
    }
    if (len == 0) {             /* the server closed: we have everything */
        finish(s, 0);
        return;
    }
    if (io_write_all(STDOUT_FILENO, data, len) < 0) {
        perror("client: stdout");
        finish(s, 1);
        return;
    }
    stream_read(s, 65536, on_data, arg);
}

static void on_drained(struct stream *s, int status, void *arg)
{
    if (status != 0) {
        fprintf(stderr, "client: %s\n", stream_strerror(status));
        finish(s, 1);
        return;
    }
    stream_write_eof(s);        /* "that is all I have to say" */
    stream_read(s, 65536, on_data, arg);
}

static void on_connected(struct stream *s, int status, void *arg)
{
    struct cli *cli = arg;
    if (status != 0) {
        fprintf(stderr, "client: cannot connect to %s:%d: %s\n", cli->host, cli->port,
                stream_strerror(status));
        return;
    }
    if (stream_write(s, message, message_len) < 0) {
        fprintf(stderr, "client: %s\n", strerror(errno));
        finish(s, 1);
        return;
    }
    stream_drain(s, on_drained, arg);
}

/* All of standard input (before the loop starts: reading a terminal blocks). */
static int read_stdin(void)
{
    size_t capacity = 0;
    for (;;) {
        if (message_len == capacity) {
            capacity = capacity ? capacity * 2 : 65536;
            char *grown = realloc(message, capacity);
            if (grown == NULL)
                return -1;
            message = grown;
        }
        ssize_t n = io_read(STDIN_FILENO, message + message_len, capacity - message_len);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        message_len += (size_t)n;
    }
}

/* The arguments joined by spaces, with a newline, like echo(1). */
static int join_args(char **args, int n)
{
    for (int i = 0; i < n; i++)
        message_len += strlen(args[i]) + 1;
    message = malloc(message_len + 1);
    if (message == NULL)
        return -1;
    message[0] = '\0';
    for (int i = 0; i < n; i++) {
        strcat(message, args[i]);
        strcat(message, i + 1 < n ? " " : "\n");
    }
    return 0;
}

int main(int argc, char **argv)
{
    const struct cli_option options[] = {
        { "--timeout", "MS", "give up connecting after MS milliseconds (default 10000)", 1, 3600000, &timeout_ms },
        { 0 },
    };
    struct cli cli = {
        .program = "client",
        .about = "Chapter 09: send a message (the arguments, or stdin) and print what comes back.",
        .options = options,
        .is_client = 1,
        .args_usage = "[MESSAGE...]",
    };
    int parsed = cli_parse(&cli, argc, argv);
    if (parsed != CLI_OK)
        return cli_exit_code(&cli, parsed);
    signal(SIGPIPE, SIG_IGN);
    if ((cli.nargs > 0 ? join_args(cli.args, cli.nargs) : read_stdin()) < 0) {
        perror("client: message");
        return 1;
    }
    struct loop *loop = loop_new();
    if (loop == NULL || stream_open_connection(loop, cli.host, cli.port, (unsigned)timeout_ms,
                                               on_connected, &cli) == NULL) {
        perror("client");
        return 1;
    }
    loop_run(loop);             /* returns when the stream is closed */
    loop_free(loop);
    free(message);
    return exit_status;
}
