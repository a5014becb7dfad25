/*
 * Chapter 10 — hello: asyncio's first example, with two tasks at once.
 *
 *     import asyncio
 *
 *     async def hello():
 *         print("Hello")
 *         await asyncio.sleep(1)
 *         print("World")
 *
 *     async def main():
 *         await asyncio.gather(hello(), hello())
 *
 *     asyncio.run(main())
 *
 * Both tasks print "Hello", both sleep at the same time, both print "World":
 * Hello Hello World World, in one second, not two. Each `await` is a call
 * that suspends the task and lets the loop run the other.
 */
#include <stdio.h>

#include "loop.h"
#include "task.h"

static intptr_t hello(void *arg)
{
    (void)arg;
    printf("Hello\n");
    task_sleep(1000);
    printf("World\n");
    return 0;
}

static intptr_t main_task(void *arg)
{
    struct loop *loop = arg;
    struct task *tasks[2] = { task_spawn(loop, hello, NULL, NULL), task_spawn(loop, hello, NULL, NULL) };
    if (tasks[0] == NULL || tasks[1] == NULL)
        return 1;
    return task_gather(tasks, 2, NULL);
}

int main(void)
{
    struct loop *loop = loop_new();
    intptr_t result = 1;
    if (loop == NULL || task_run(loop, main_task, loop, &result) < 0) {
        perror("hello");
        return 1;
    }
    loop_free(loop);
    return result == 0 ? 0 : 1;
}
