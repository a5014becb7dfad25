/*
 * Chapter 10 — chat: chapter 09's chat server, with a task per member.
 *
 *     async def member(reader, writer):                    static void member(struct stream *s, void *arg)
 *         writer.write(b"nickname?\n")                         say(&m, "nickname?\n");
 *         while line := await reader.readline():               while ((n = task_readline_view(s, &line)) != 0) {
 *             if not nick: nick = choose(line); continue           if (!m.nick[0]) { choose_nick(...); continue; }
 *             if line.startswith(b"/quit"): break                  if (is_quit(line, n)) break;
 *             for other in members:                                broadcast(&m, "[nick] line");
 *                 other.write(b"[%s] %s" % (nick, line))       }
 *         writer.close()                                       task_close(s);
 *
 * Same behaviour as 09's (same prompt, messages, --line-limit, --max-queue
 * and the cut-off of a member who never reads), and the same tests. What
 * changed: 09's member state (choosing a nick, discarding a long line's
 * tail) lived in flags between callbacks; here it lives where a sequential
 * program keeps it, in local variables and the position in the loop. The
 * member record itself is a local of its task.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "contract.h"
#include "net.h"
#include "task_stream.h"
#include "trace.h"

#define NICK_MAX 32

struct member {
    struct stream *stream;
    char nick[NICK_MAX + 1];    /* empty until chosen */
    int cut;                    /* not reading: to be disconnected */
    int gone;                   /* left the list (cut off, or the server stops) */
    struct member *prev, *next;
};

static struct task_server *server;
static struct member *members;
static long member_count, line_limit = 4096, max_queue = 1024 * 1024;
static unsigned long long served, relayed;

static void leave(struct member *m, const char *why)
{
    if (m->prev != NULL)
        m->prev->next = m->next;
    else
        members = m->next;
    if (m->next != NULL)
        m->next->prev = m->prev;
    m->gone = 1;
    member_count--;
    TRACE("leave fd=%d nick=%s why=%s", stream_fd(m->stream), m->nick, why);
}

/* Send text to everyone with a nickname except `from`. A member whose queue
 * is full is not reading: cut them off rather than buffer without bound, and
 * tell the others. The member's own task then finds its stream aborted. */
static void broadcast(struct member *from, const char *text)
{
    size_t len = strlen(text);
    for (struct member *m = members; m != NULL; m = m->next) {
        if (m == from || m->nick[0] == '\0' || m->cut)
            continue;
        if (task_write(m->stream, text, len) == 0)
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
        leave(m, "not-reading");
        stream_abort(m->stream);            /* its readline returns; its task ends */
        broadcast(NULL, notice);            /* may cut more: the loop looks again */
    }
}

static void say(struct member *m, const char *text)
{
    if (task_write(m->stream, text, strlen(text)) < 0)
        stream_abort(m->stream);    /* its readline then ends the loop */
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

static int is_quit(const char *line, size_t len)
{
    return len >= 5 && memcmp(line, "/quit", 5) == 0 && (len == 5 || line[5] == '\n' || line[5] == '\r');
}

static void relay(struct member *m, const char *line, size_t len)
{
    /* "[nick] " + the line, which ends with its own newline (or gets one). */
    char *text = malloc(NICK_MAX + 4 + len + 2);
    if (text == NULL)
        return;
    int n = snprintf(text, NICK_MAX + 4, "[%s] ", m->nick);
    memcpy(text + n, line, len);
    if (line[len - 1] != '\n')
        text[n + len++] = '\n';
    text[n + len] = '\0';
    broadcast(m, text);
    free(text);
}

static void member(struct stream *s, void *arg)
{
    (void)arg;
    struct member m = { .stream = s, .next = members };
    if (members != NULL)
        members->prev = &m;
    members = &m;
    member_count++;
    served++;
    say(&m, "nickname?\n");
    const char *line;
    ssize_t n;
    const char *why = "eof";
    int discarding = 0;             /* the rest of a too-long line is still coming */
    while ((n = task_readline_view(s, &line)) != 0 && !m.gone) {
        if (n == -EMSGSIZE || n == -E2BIG) {        /* over --line-limit: dropped */
            char text[96];
            snprintf(text, sizeof text, "error: line too long (limit %ld bytes)\n", line_limit);
            say(&m, text);
            discarding = n == -E2BIG;
            continue;
        }
        if (discarding && n > 0) {  /* the tail of the long line */
            discarding = 0;
            continue;
        }
        if (n < 0) {
            why = n == -ECANCELED ? "stop" : "error";
            break;
        }
        if (is_quit(line, (size_t)n)) {
            say(&m, "bye\n");
            why = "quit";
            break;
        }
        if (m.nick[0] == '\0')
            choose_nick(&m, line, (size_t)n);
        else
            relay(&m, line, (size_t)n);
    }
    if (m.gone)                     /* cut off: the others were told already */
        return;
    leave(&m, why);
    if (n == -ECANCELED) {          /* the server stops: no goodbyes */
        stream_abort(s);
        return;
    }
    task_close(s);                  /* flushes "bye" first */
    if (m.nick[0] != '\0') {
        char text[NICK_MAX + 32];
        snprintf(text, sizeof text, "* %s left\n", m.nick);
        broadcast(NULL, text);
    }
}

static void on_stop(struct loop *loop, void *arg)
{
    (void)arg;
    task_server_close(server);      /* every member's readline returns -ECANCELED */
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
        .about = "Chapter 10: chapter 09's chat server, with a task per member.",
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
    server = listen_fd < 0 ? NULL : task_serve(loop, listen_fd, &opts, member, NULL, NULL);
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
