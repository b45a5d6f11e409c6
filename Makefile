# returnflow: `make` builds, `make run` maps the fixtures, `make test` runs every suite (plus ASan).
# Missing Debian packages are installed by `make deps` when run as root (else the apt-get line is printed).

PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
SHAREDIR   ?= $(PREFIX)/share/returnflow
LUADIR     ?= $(PREFIX)/share/lua/5.4
BUILD      ?= build
SHARED     ?= ../shared

CC         ?= gcc
OPT        ?= -O2 -g
SAN        ?=
WARN       := -Wall -Wextra -Werror
CFLAGS_ALL  = -std=c11 -D_GNU_SOURCE $(OPT) $(SAN) $(WARN) $(shell pkg-config --cflags lua5.4) \
              -Icore -I$(BUILD) -DRETURNFLOW_SHARE='"$(SHAREDIR)"'
LDLIBS_ALL  = -llua5.4-cjson $(shell pkg-config --libs lua5.4) -luv -lhttp_parser -lsqlite3 -lcrypto -lcurl \
              -lpthread -lm

CMD_SRC    := core/main.c $(wildcard core/cmd_*.c)
CORE_SRC   := $(filter-out $(CMD_SRC),$(wildcard core/*.c))
CORE_OBJ    = $(CORE_SRC:core/%.c=$(BUILD)/%.o) $(BUILD)/embedded.o
CMD_OBJ     = $(CMD_SRC:core/%.c=$(BUILD)/%.o)
LUA_MODULES := $(sort $(wildcard core/lua/returnflow/*.lua))
C_TESTS    := $(wildcard spec/c/test_*.c)

.PHONY: build deps test asan run bench install clean lint
build: $(BUILD)/returnflow

deps:
	@sh tools/deps.sh

$(BUILD)/embedded.c: $(LUA_MODULES) tools/embed.lua
	@mkdir -p $(@D)
	lua5.4 tools/embed.lua $@ core/lua $(LUA_MODULES)

$(BUILD)/%.o: core/%.c core/*.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/embedded.o: $(BUILD)/embedded.c core/embedded.h
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/returnflow: $(CMD_OBJ) $(CORE_OBJ)
	$(CC) $(OPT) $(SAN) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/test_%: spec/c/test_%.c $(CORE_OBJ)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL) -lcmocka

$(BUILD)/bench_transform: bench/bench_transform.c $(CORE_OBJ)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

# The disk's durable-log ceiling, printed beside serve's acked webhooks/s (bench/serve.sh).
$(BUILD)/fsync_ceiling: bench/fsync_ceiling.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -o $@ $<

c-tests: $(C_TESTS:spec/c/test_%.c=$(BUILD)/test_%)

# The whole suite twice: a normal build, then ASan+UBSan; the last line sums both.
test: deps
	@sh tools/test.sh all

asan: deps
	@sh tools/test.sh asan

run: deps build
	@sh tools/run.sh

bench: build $(BUILD)/bench_transform $(BUILD)/fsync_ceiling
	@sh tools/deps.sh bench
	@sh bench/run.sh
	@BUILD=$(BUILD) SHARED=$(SHARED) sh bench/serve.sh

lint:
	@command -v luacheck >/dev/null || { echo "luacheck missing: apt-get install -y lua-check"; exit 1; }
	luacheck core/lua scripts spec bench/anchor-mapping

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SHAREDIR)/scripts $(DESTDIR)$(LUADIR)/returnflow
	install -m 755 $(BUILD)/returnflow $(DESTDIR)$(BINDIR)/returnflow
	install -m 644 scripts/*.lua $(DESTDIR)$(SHAREDIR)/scripts/
	install -m 644 $(LUA_MODULES) $(DESTDIR)$(LUADIR)/returnflow/

clean:
	rm -rf build build-asan
