/*
 * Chapter 10 — server: asyncio's echo server, line by line, on tasks.
 *
 *     async def handle_echo(reader, writer):          static void handle_echo(struct stream *s, void *arg)
 *         addr = writer.get_extra_info('peername')        stream_peername(s, addr, sizeof addr);
 *         print(f"Connected to {addr!r}")                 TRACE("peer %s fd=%d", addr, stream_fd(s));
 *         while data := await reader.read(65536):         while ((n = task_read_view(s, 65536, &data)) > 0) {
 *             writer.write(data)                              task_write(s, data, n);
 *             await writer.drain()                            task_drain(s);
 *                                                         }
 *         writer.close()                                  task_close(s);
 *         await writer.wait_closed()                      task_wait_closed(s);
 *
 *     async def main():
 *         server = await asyncio.start_server(handle_echo, '127.0.0.1', 8888)
 *         async with server:
 *             await server.serve_forever()
 *
 *     asyncio.run(main())
 *
 * Chapter 09's server is the same logic cut into three callbacks; here every
 * client gets a task, and the handler reads top to bottom. The stream module
 * underneath is 09's, unchanged: the same buffering and back-pressure (the
 * handler reads again only once drain says the client keeps up).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "contract.h"
#include "net.h"
#include "task_stream.h"
#include "trace.h"

static struct task_server *server;
static unsigned long long served, echoed;

static void handle_echo(struct stream *s, void *arg)
{
    (void)arg;
    char addr[NET_ADDRSTRLEN];
    const char *data;
    ssize_t n;
    served++;
    if (trace_enabled && stream_peername(s, addr, sizeof addr) == 0)
        TRACE("peer %s fd=%d", addr, stream_fd(s));
    /* task_read_view: the bytes stay in the stream's buffer until our next
     * suspending call, so the echo is copied once, into the write queue. */
    while ((n = task_read_view(s, 65536, &data)) > 0) {
        if (task_write(s, data, (size_t)n) < 0)
            break;
        echoed += (unsigned long long)n;
        if (task_drain(s) < 0)
            break;
    }
    if (n == 0) {                   /* end of stream: send what is queued, then close */
        task_close(s);
        task_wait_closed(s);
    } else {                        /* cancelled (SIGTERM), reset, or not reading */
        stream_abort(s);
    }
}

/* SIGINT/SIGTERM: stop accepting and cancel every handler: each one's
 * pending read or drain returns -ECANCELED and it aborts its stream. Then
 * the loop has nothing left to wait for, and loop_run returns. */
static void on_stop(struct loop *loop, void *arg)
{
    (void)arg;
    task_server_close(server);
    server = NULL;
    loop_remove_stop_handler(loop);
}

int main(int argc, char **argv)
{
    struct cli cli = {
        .program = "server",
        .about = "Chapter 10: the echo server with a task per client (asyncio's handle_echo).",
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
    if (loop_add_stop_handler(loop, on_stop, NULL) < 0) {
        perror("server: signals");
        return 1;
    }
    int listen_fd = contract_listen(&cli, SOMAXCONN);     /* prints "listening on ..." */
    server = listen_fd < 0 ? NULL : task_serve(loop, listen_fd, NULL, handle_echo, NULL, NULL);
    if (server == NULL) {
        if (listen_fd >= 0) {
            perror("server: task_serve");
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
