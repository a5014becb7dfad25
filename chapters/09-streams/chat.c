/*
 * Chapter 09 — chat: a line-based chat server on the stream API.
 *
 *     $ ./chat --port 7000                     $ nc 127.0.0.1 7000
 *                                              nickname? ada
 *                                              * welcome, ada (2 here)
 *                                              hello all            -> [ada] hello all
 *                                              /quit                -> bye
 *
 * Every line a member sends goes to every other member. This is where the
 * stream API's limits earn their keep:
 *   - readline has a limit (--line-limit): a longer line gets an error line
 *     back and is dropped, and the member stays connected;
 *   - each member's write queue has a hard cap (--max-queue): a member who
 *     stops reading while others talk fills it, and is disconnected with a
 *     notice to the others, instead of growing the server's memory without
 *     bound or slowing anybody else down.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "contract.h"
#include "net.h"
#include "stream.h"
#include "trace.h"

#define NICK_MAX 32

struct member {
    struct stream *stream;
    char nick[NICK_MAX + 1];    /* empty until chosen */
    int cut;                    /* not reading: to be disconnected */
    int discarding;             /* the rest of a too-long line is still coming */
    struct member *prev, *next;
};

static struct stream_server *server;
static struct member *members;
static long member_count, line_limit = 4096, max_queue = 1024 * 1024;
static unsigned long long served, relayed;

static void on_line(struct stream *s, int status, const char *data, size_t len, void *arg);

static void leave(struct member *m, const char *why)
{
    if (m->prev != NULL)
        m->prev->next = m->next;
    else
        members = m->next;
    if (m->next != NULL)
        m->next->prev = m->prev;
    member_count--;
    TRACE("leave fd=%d nick=%s why=%s", stream_fd(m->stream), m->nick, why);
    free(m);
}

/* Send text to everyone with a nickname except `from`. A member whose queue
 * is full is not reading: cut them off rather than buffer without bound, and
 * tell the others. */
static void broadcast(struct member *from, const char *text)
{
    size_t len = strlen(text);
    for (struct member *m = members; m != NULL; m = m->next) {
        if (m == from || m->nick[0] == '\0' || m->cut)
            continue;
        if (stream_write(m->stream, text, len) == 0)
            relayed += len;
        else
            m->cut = 1;
    }
    for (;;) {
        struct member *m = members;
        while (m != NULL && !m->cut)
            m = m->next;
        if (m == NULL)
            return;
        char notice[NICK_MAX + 64];
        snprintf(notice, sizeof notice, "* %s was disconnected (not reading)\n", m->nick);
        TRACE("cut fd=%d nick=%s queued=%zu", stream_fd(m->stream), m->nick,
              stream_write_queued(m->stream));
        stream_set_user(m->stream, NULL);   /* its pending readline will find nobody */
        stream_abort(m->stream);
        leave(m, "not-reading");
        broadcast(NULL, notice);            /* may cut more: the loop looks again */
    }
}

static void say(struct member *m, const char *text)
{
    if (stream_write(m->stream, text, strlen(text)) < 0)
        stream_abort(m->stream);
}

static void choose_nick(struct member *m, const char *line, size_t len)
{
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (len == 0 || len > NICK_MAX || memchr(line, ' ', len) != NULL) {
        say(m, "nickname? (1-32 characters, no spaces)\n");
        return;
    }
    memcpy(m->nick, line, len);
    m->nick[len] = '\0';
    char text[NICK_MAX + 64];
    snprintf(text, sizeof text, "* welcome, %s (%ld here)\n", m->nick, member_count);
    say(m, text);
    snprintf(text, sizeof text, "* %s joined\n", m->nick);
    broadcast(m, text);
}

static void on_line(struct stream *s, int status, const char *data, size_t len, void *arg)
{
    struct member *m = stream_get_user(s);
    (void)arg;
    if (m == NULL)
        return;                     /* cut off by broadcast: already gone */
    if (status == STREAM_LIMIT) {
        char text[96];
        snprintf(text, sizeof text, "error: line too long (limit %ld bytes)\n", line_limit);
        say(m, text);
        m->discarding = len == 0;   /* its end is still to come: drop that too */
        stream_readline(s, on_line, NULL);
        return;
    }
    if (m->discarding && status == 0 && len > 0) {
        m->discarding = 0;          /* the tail of the long line */
        stream_readline(s, on_line, NULL);
        return;
    }
    if (status != 0 || len == 0 || (len >= 5 && memcmp(data, "/quit", 5) == 0 &&
                                    (len == 5 || data[5] == '\n' || data[5] == '\r'))) {
        char text[NICK_MAX + 32];
        if (status == 0 && len > 0)
            say(m, "bye\n");
        stream_close(s);            /* flushes "bye" first */
        stream_set_user(s, NULL);
        int named = m->nick[0] != '\0';
        snprintf(text, sizeof text, "* %s left\n", m->nick);
        leave(m, status != 0 ? "error" : len == 0 ? "eof" : "quit");
        if (named)
            broadcast(NULL, text);
        return;
    }
    if (m->nick[0] == '\0') {
        choose_nick(m, data, len);
    } else {
        /* "[nick] " + the line, which ends with its own newline (or gets one). */
        char *text = malloc(NICK_MAX + 4 + len + 2);
        if (text != NULL) {
            int n = snprintf(text, NICK_MAX + 4, "[%s] ", m->nick);
            memcpy(text + n, data, len);
            if (data[len - 1] != '\n')
                text[n + len++] = '\n';
            text[n + len] = '\0';
            broadcast(m, text);
            free(text);
        }
    }
    if (stream_get_user(s) != NULL)
        stream_readline(s, on_line, NULL);
}

static void on_member(struct stream *s, void *arg)
{
    (void)arg;
    struct member *m = calloc(1, sizeof *m);
    if (m == NULL) {
        stream_abort(s);
        return;
    }
    m->stream = s;
    m->next = members;
    if (members != NULL)
        members->prev = m;
    members = m;
    member_count++;
    served++;
    stream_set_user(s, m);
    say(m, "nickname?\n");
    stream_readline(s, on_line, NULL);
}

static void on_stop(struct loop *loop, void *arg)
{
    (void)arg;
    while (members != NULL) {
        stream_set_user(members->stream, NULL);     /* its last callback finds nobody */
        leave(members, "stop");
    }
    stream_server_close(server, STREAM_ABORT_CLIENTS);
    loop_remove_stop_handler(loop);
}

int main(int argc, char **argv)
{
    const struct cli_option options[] = {
        { "--line-limit", "BYTES", "longest line accepted (default 4096)", 16, 1 << 20, &line_limit },
        { "--max-queue", "BYTES", "cut off a member with this much unsent (default 1 MiB)", 1024, 1 << 30, &max_queue },
        { 0 },
    };
    struct cli cli = {
        .program = "chat",
        .about = "Chapter 09: a line-based chat server on asyncio-style streams.",
        .options = options,
    };
    int parsed = cli_parse(&cli, argc, argv);
    if (parsed != CLI_OK)
        return cli_exit_code(&cli, parsed);
    signal(SIGPIPE, SIG_IGN);
    struct loop *loop = loop_new();
    if (loop == NULL || net_reserve_open() < 0 ||
        loop_add_stop_handler(loop, on_stop, NULL) < 0) {
        perror("chat: setup");
        return 1;
    }
    struct stream_options opts = { .limit = (size_t)line_limit, .write_cap = (size_t)max_queue };
    int listen_fd = contract_listen(&cli, SOMAXCONN);
    server = listen_fd < 0 ? NULL : stream_serve(loop, listen_fd, &opts, on_member, NULL);
    if (server == NULL) {
        loop_remove_stop_handler(loop);
        loop_free(loop);
        return 1;
    }
    int status = loop_run(loop);
    if (loop_free(loop) < 0)
        status = -1;
    net_reserve_close();
    fprintf(stderr, "chat: served %llu members, relayed %llu bytes\n", served, relayed);
    return status < 0 ? 1 : 0;
}
