# Build rules shared by every chapter's Makefile and by tools/Makefile.
#
# The includer sets PROGRAMS (say "server") and, for each program P,
# P_SOURCES (its own .c files). Every program also links common/*.c.
# EXTRA_CFLAGS: flags a chapter adds to everyone's (CFLAGS itself is the
# user's: set before this file, it would replace the default -O2).
# Chapters that need Linux set LINUX_ONLY = 1 and are skipped elsewhere.
#
#   make              build in place
#   make SANITIZE=1   build with AddressSanitizer + UndefinedBehaviorSanitizer
#                     (LeakSanitizer comes with ASan on Linux)
#   make SANITIZE=thread  build with ThreadSanitizer, for the threaded chapters
#                     (03, 11): a data race makes the program exit 66
#   make CC=clang     any C11 compiler
#   make LOOP_BACKEND=poll   chapter 08's loop (and every chapter on it) with
#                     its portable backend, poll and a self-pipe, as off Linux

COMMON_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
COMMON_SOURCES := $(wildcard $(COMMON_DIR)/*.c)
COMMON_HEADERS := $(wildcard $(COMMON_DIR)/*.h)

CFLAGS ?= -O2
CFLAGS += -std=c11 -Wall -Wextra -Wpedantic $(EXTRA_CFLAGS)
CPPFLAGS += -D_POSIX_C_SOURCE=200809L -I$(COMMON_DIR)
LDLIBS += -lpthread
ifeq ($(SANITIZE),1)
CFLAGS += -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(SANITIZE),thread)
CFLAGS += -O1 -g -fno-omit-frame-pointer -fsanitize=thread
LDFLAGS += -fsanitize=thread
endif
ifeq ($(LOOP_BACKEND),poll)
CPPFLAGS += -DLOOP_BACKEND_POLL
else ifneq ($(filter-out epoll,$(LOOP_BACKEND)),)
$(error LOOP_BACKEND=$(LOOP_BACKEND): say poll, or nothing for the platform's own)
endif
ifeq ($(WERROR),1)
CFLAGS += -Werror
endif

# Rebuild when the compiler or its flags change (a SANITIZE=1 build after a
# plain one, say): .cflags holds the last command line and changes with it.
BUILD_LINE := $(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $(LDLIBS)
$(shell printf '%s\n' '$(BUILD_LINE)' | cmp -s - .cflags 2>/dev/null || printf '%s\n' '$(BUILD_LINE)' > .cflags)

ifeq ($(LINUX_ONLY)-$(shell uname -s),1-Linux)
SKIP :=
else ifeq ($(LINUX_ONLY),1)
SKIP := this chapter uses Linux system calls; skipped on $(shell uname -s)
endif

.PHONY: all clean
ifeq ($(SKIP),)
all: $(PROGRAMS)
else
all:
	@echo "$(notdir $(CURDIR)): $(SKIP)"
endif

.SECONDEXPANSION:
# A program depends on its sources, the files beside them (headers, and
# files included whole, like 08's loop backends), and common/.
$(PROGRAMS): %: $$($$*_SOURCES) $$(wildcard $$(addsuffix *.[ch],$$(sort $$(dir $$($$*_SOURCES))))) $(COMMON_SOURCES) $(COMMON_HEADERS) .cflags
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $($@_SOURCES) $(COMMON_SOURCES) $(LDLIBS)

clean:
	rm -f $(PROGRAMS) $(EXTRA_CLEAN) .cflags
