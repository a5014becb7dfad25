/*
 * Chapter 10 — client: asyncio's echo client, line by line, on tasks.
 *
 *     async def tcp_echo_client(message):                 static intptr_t tcp_echo_client(void *arg)
 *         reader, writer = await asyncio.open_connection(     task_open_connection(host, port,
 *             '127.0.0.1', 8888)                                  timeout, &s);
 *         print(f'Send: {message!r}')                         TRACE("send %zu bytes", len);
 *         writer.write(message.encode())                      task_write(s, message, len);
 *         await writer.drain()                                task_drain(s);
 *         data = await reader.read(100)                       n = task_read(s, data, bytes);
 *         print(f'Received: {data.decode()!r}')               fwrite(data, 1, n, stdout);
 *         print('Close the connection')                       TRACE("close");
 *         writer.close()                                      task_close(s);
 *         await writer.wait_closed()                          task_wait_closed(s);
 *
 *     asyncio.run(tcp_echo_client('Hello World!'))
 *
 * The message is the arguments joined by spaces (with a newline), as in
 * chapter 09's client. Like the Python, it reads once: up to --bytes bytes
 * (default 100), whatever has arrived by then. The Send/Received/Close lines
 * go to stderr with -v; stdout carries only the bytes received.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "task_stream.h"
#include "trace.h"

static struct cli cli;
static long timeout_ms = 10000, bytes = 100;
static char *message;
static size_t message_len;

static intptr_t tcp_echo_client(void *arg)
{
    (void)arg;                      /* no loop to hand over: task_open_connection finds the running one */
    struct stream *s;
    int rc = task_open_connection(cli.host, cli.port, (unsigned)timeout_ms, &s);
    if (rc != 0) {
        fprintf(stderr, "client: cannot connect to %s:%d: %s\n", cli.host, cli.port, stream_strerror(rc));
        return 1;
    }
    TRACE("send %zu bytes", message_len);
    if ((rc = task_write(s, message, message_len)) == 0)
        rc = task_drain(s);
    char *data = malloc((size_t)bytes);
    ssize_t n = rc == 0 && data != NULL ? task_read(s, data, (size_t)bytes) : rc;
    if (n > 0) {
        TRACE("received %zd bytes", n);
        fwrite(data, 1, (size_t)n, stdout);
    } else if (n < 0) {
        fprintf(stderr, "client: %s\n", stream_strerror((int)n));
    }
    free(data);
    TRACE("close the connection");
    task_close(s);
    task_wait_closed(s);
    return n < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    const struct cli_option options[] = {
        { "--bytes", "N", "read at most N bytes of answer (default 100)", 1, 1 << 24, &bytes },
        { "--timeout", "MS", "give up connecting after MS milliseconds (default 10000)", 1, 3600000, &timeout_ms },
        { 0 },
    };
    cli = (struct cli){
        .program = "client",
        .about = "Chapter 10: asyncio's echo client: send MESSAGE, print one read of the answer.",
        .options = options,
        .is_client = 1,
        .args_usage = "MESSAGE...",
    };
    int parsed = cli_parse(&cli, argc, argv);
    if (parsed != CLI_OK)
        return cli_exit_code(&cli, parsed);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < cli.nargs; i++)
        message_len += strlen(cli.args[i]) + 1;
    message = calloc(1, message_len + 1);
    if (message == NULL) {
        perror("client");
        return 1;
    }
    for (int i = 0; i < cli.nargs; i++) {
        strcat(message, cli.args[i]);
        strcat(message, i + 1 < cli.nargs ? " " : "\n");
    }
    struct loop *loop = loop_new();
    intptr_t result = 1;
    if (loop == NULL || task_run(loop, tcp_echo_client, NULL, &result) < 0)
        perror("client");
    if (loop != NULL)
        loop_free(loop);
    free(message);
    return (int)result;
}
