/*
 * Chapter 09 — streams: the echo server the way asyncio's documentation
 * writes it, on buffered streams instead of raw readiness.
 *
 *     async def handle_echo(reader, writer):        on_client(s)
 *         while True:
 *             data = await reader.read(65536)       stream_read(s, 65536, on_data)
 *             if not data: break                    on_data: len == 0 -> close
 *             writer.write(data)                    stream_write(s, data, len)
 *             await writer.drain()                  stream_drain(s, on_drained)
 *         writer.close()                            on_drained: read again
 *
 * Each `await` becomes "start it, and continue in a callback". The stream
 * module does the buffering, the back-pressure (drain waits while the client
 * is not reading; reading waits for drain) and the error handling that 08's
 * server did by hand.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "contract.h"
#include "net.h"
#include "stream.h"
#include "trace.h"

#define READ_SIZE 65536

static struct stream_server *server;
static unsigned long long served, echoed;

static void on_data(struct stream *s, int status, const char *data, size_t len, void *arg);

static void on_drained(struct stream *s, int status, void *arg)
{
    if (status != 0) {
        stream_abort(s);        /* the client vanished with echo unsent */
        return;
    }
    stream_read(s, READ_SIZE, on_data, arg);
}

static void on_data(struct stream *s, int status, const char *data, size_t len, void *arg)
{
    if (status != 0 || len == 0) {
        stream_close(s);        /* end of stream (or a reset): we are done */
        return;
    }
    if (stream_write(s, data, len) < 0) {
        stream_abort(s);
        return;
    }
    echoed += len;
    stream_drain(s, on_drained, arg);   /* read more only once the client keeps up */
}

static void on_client(struct stream *s, void *arg)
{
    served++;
    stream_read(s, READ_SIZE, on_data, arg);
}

/* SIGINT/SIGTERM: close the server and every client; the loop then runs out
 * of things to wait for and loop_run returns. */
static void on_stop(struct loop *loop, void *arg)
{
    (void)arg;
    stream_server_close(server, STREAM_ABORT_CLIENTS);
    server = NULL;
    loop_remove_stop_handler(loop);
}

int main(int argc, char **argv)
{
    struct cli cli = {
        .program = "server",
        .about = "Chapter 09: the echo server on asyncio-style streams (read, write, drain).",
    };
    int parsed = cli_parse(&cli, argc, argv);
    if (parsed != CLI_OK)
        return cli_exit_code(&cli, parsed);
    signal(SIGPIPE, SIG_IGN);
    TRACE("fd limit raised to %ld", net_raise_fd_limit());

    struct loop *loop = loop_new();
    if (loop == NULL || net_reserve_open() < 0) {
        perror("server: setup");
        return 1;
    }
    /* Signal handlers first: a SIGTERM right after "listening on" must count. */
    if (loop_add_stop_handler(loop, on_stop, NULL) < 0) {
        perror("server: signals");
        return 1;
    }
    int listen_fd = contract_listen(&cli, SOMAXCONN);     /* prints "listening on ..." */
    server = listen_fd < 0 ? NULL : stream_serve(loop, listen_fd, NULL, on_client, NULL);
    if (server == NULL) {
        if (listen_fd >= 0) {
            perror("server: stream_serve");
            close(listen_fd);
        }
        loop_remove_stop_handler(loop);
        loop_free(loop);
        net_reserve_close();
        return 1;
    }

    int status = loop_run(loop);
    if (loop_free(loop) < 0) {
        perror("server: loop_free");
        status = -1;
    }
    net_reserve_close();
    contract_summary(&cli, served, echoed);
    return status < 0 ? 1 : 0;
}
