# returnflow: `make` builds, `make run` maps the fixtures, `make check` runs the C tests and the fast specs
# (about a minute), `make test` every suite, normal and ASan+UBSan builds, their jobs in one pool.
# Missing Debian packages are installed by `make deps` when run as root (else the apt-get line is printed).

PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
SHAREDIR   ?= $(PREFIX)/share/returnflow
LUADIR     ?= $(PREFIX)/share/lua/5.4
LIBDIR     ?= $(PREFIX)/lib/lua/5.4
BUILD      ?= build
# `make install` builds here: the install folders are compiled in, so it never rebuilds build/.
INSTALL_BUILD ?= build-install

# ccache (installed by `make deps`) when present: the suite builds the same sources again in a clone
# (spec/repo/clone_spec.lua) and in luarocks' folder (rockspec_spec.lua); identical inputs then cost a
# cache look-up. Debug paths are made relative (-ffile-prefix-map), so the folder is not part of the key.
CCACHE     := $(shell command -v ccache 2>/dev/null)
ifeq ($(origin CC),default)
CC         := gcc
endif
# ccache goes in front of whichever compiler compiles (luarocks passes CC=gcc on make's command line,
# and the rock's build then compiled everything again: 28 s of CPU a `make test`).
COMPILE    := $(if $(and $(CCACHE),$(filter-out ccache,$(notdir $(firstword $(CC))))),ccache )$(CC)
export CCACHE_NOHASHDIR := 1
OPT        ?= -O2 -g
SAN        ?=
WARN       := -Wall -Wextra -Werror
CFLAGS_ALL  = -std=c11 -D_GNU_SOURCE $(OPT) $(SAN) $(WARN) $(shell pkg-config --cflags lua5.4 libpq) \
              $(addprefix -I,$(CORE_DIRS)) -I$(BUILD) -MMD -MP -ffile-prefix-map=$(CURDIR)=.
# The install folders, compiled into the two files that look there (a change of folders rebuilds them).
PATHS_CFLAGS = -DRETURNFLOW_SHARE='"$(SHAREDIR)"' -DRETURNFLOW_LUADIR='"$(LUADIR)"' -DRETURNFLOW_LIBDIR='"$(LIBDIR)"'
PATHS_FILES  = base/share.c cli/cmd_test.c
LDLIBS_ALL  = -llua5.4-cjson $(shell pkg-config --libs lua5.4) -luv -lhttp_parser -lsqlite3 -lcrypto \
              -lseccomp -lpthread -lm

# core/ is folders by role (docs/architecture.md); every folder is on the include path, so a file
# includes a header by its name alone. Objects mirror the folders under $(BUILD)/obj.
CORE_DIRS  := $(sort $(dir $(wildcard core/*/*.c core/*/*/*.c)))
CMD_SRC    := $(wildcard core/cli/*.c)
CORE_SRC   := $(filter-out $(CMD_SRC),$(wildcard core/*/*.c core/*/*/*.c))
CORE_OBJ    = $(CORE_SRC:core/%.c=$(BUILD)/obj/%.o) $(BUILD)/embedded.o $(BUILD)/console_assets.o
CMD_OBJ     = $(CMD_SRC:core/%.c=$(BUILD)/obj/%.o)
LUA_MODULES := $(sort $(wildcard core/lua/returnflow/*.lua core/lua/returnflow/cli/*.lua))
# Host-only Lua (tools, the busted kit): embedded apart, where no sandbox's require looks.
HOST_MODULES := $(filter core/lua/returnflow/cli/% core/lua/returnflow/render.lua core/lua/returnflow/testing.lua \
                  core/lua/returnflow/testing_assertions.lua,$(LUA_MODULES))
SANDBOX_MODULES := $(filter-out $(HOST_MODULES),$(LUA_MODULES))
# returnflow.native: the mapper's C as a Lua library for busted (lua_native.c); position-independent objects.
# Never sanitized: it loads into Debian's lua5.4, which is not built with ASan (the binary carries the
# same C sanitized).
NATIVE_SRC := json/json.c json/json_encode.c json/json_event.c script/sandbox.c script/sandbox_watch.c script/sandbox_realm.c script/loop_properties.c script/emitter_native.c script/sandbox_lib.c script/sandbox_table.c script/lua_pattern.c \
              script/klaviyo_limits.c script/klaviyo_endpoints.c script/klaviyo_body.c \
              script/mapper.c base/strmap.c base/signature.c base/share.c tooling/lua_native.c tooling/lua_http.c
NATIVE_OBJ  = $(NATIVE_SRC:%.c=$(BUILD)/pic/%.o) $(BUILD)/pic/embedded.o
NATIVE_SO   = $(BUILD)/lib/returnflow/native.so
C_TESTS    := $(wildcard spec/c/test_*.c)

.PHONY: build deps test stress check asan run bench bench-instructions install install-share busted clean lint previews fuzz fuzz-smoke screenshots
build: $(BUILD)/returnflow $(NATIVE_SO)

deps:
	@sh tools/deps.sh

DEFAULT_SCRIPTS := $(sort $(wildcard scripts/*.lua))

# The list of default scripts is a dependency too: removing one must rebuild (a stamp named after it).
SCRIPTS_STAMP := $(BUILD)/scripts-$(shell printf '%s' '$(DEFAULT_SCRIPTS) $(LUA_MODULES)' | md5sum | cut -c1-12)
$(SCRIPTS_STAMP):
	@mkdir -p $(@D)
	@rm -f $(BUILD)/scripts-*
	@touch $@

$(BUILD)/embedded.c: $(LUA_MODULES) $(DEFAULT_SCRIPTS) tools/embed.lua $(SCRIPTS_STAMP)
	@mkdir -p $(@D)
	lua5.4 tools/embed.lua $@ core/lua $(SANDBOX_MODULES) --host $(HOST_MODULES) --defaults $(DEFAULT_SCRIPTS)

# The install folders are compiled in: a stamp named after them makes a change of folders rebuild.
PATHS_STAMP := $(BUILD)/paths-$(shell printf '%s' '$(SHAREDIR) $(LUADIR) $(LIBDIR)' | md5sum | cut -c1-12)
$(PATHS_STAMP):
	@mkdir -p $(@D)
	@rm -f $(BUILD)/paths-*
	@touch $@

$(BUILD)/obj/%.o: core/%.c
	@mkdir -p $(@D)
	$(COMPILE) $(CFLAGS_ALL) $(if $(filter $(PATHS_FILES),$*.c),$(PATHS_CFLAGS)) -c $< -o $@

$(BUILD)/embedded.o: $(BUILD)/embedded.c
	$(COMPILE) $(CFLAGS_ALL) -c $< -o $@

# The console's page, script and style (core/ops/assets/), compiled in: served by serve, no files to install.
CONSOLE_ASSETS := $(sort $(wildcard core/ops/assets/*))
$(BUILD)/console_assets.c: $(CONSOLE_ASSETS) tools/embed_assets.lua
	@mkdir -p $(@D)
	lua5.4 tools/embed_assets.lua $@ $(CONSOLE_ASSETS)

$(BUILD)/console_assets.o: $(BUILD)/console_assets.c
	$(COMPILE) $(CFLAGS_ALL) -c $< -o $@

PIC_CFLAGS  = $(filter-out -fsanitize% -fno-sanitize%,$(CFLAGS_ALL)) -fPIC

$(BUILD)/pic/%.o: core/%.c
	@mkdir -p $(@D)
	$(COMPILE) $(PIC_CFLAGS) $(if $(filter $(PATHS_FILES),$*.c),$(PATHS_CFLAGS)) -c $< -o $@

$(addprefix $(BUILD)/obj/,$(PATHS_FILES:.c=.o)) $(addprefix $(BUILD)/pic/,$(PATHS_FILES:.c=.o)): $(PATHS_STAMP)

$(BUILD)/pic/embedded.o: $(BUILD)/embedded.c
	@mkdir -p $(@D)
	$(COMPILE) $(PIC_CFLAGS) -c $< -o $@

# Lua's symbols come from the interpreter that loads it (lua5.4 is linked statically), so no -llua here.
# -z nodelete: the run-time cap's watchdog thread (core/script/sandbox_watch.c) runs this library's
# code until the process ends, so closing the Lua state that loaded it must not unmap it.
$(NATIVE_SO): $(NATIVE_OBJ)
	@mkdir -p $(@D)
	$(CC) $(OPT) -shared -Wl,-z,nodelete -o $@ $^ -llua5.4-cjson -lcurl -lcrypto -lm -lpthread

$(BUILD)/returnflow: $(CMD_OBJ) $(CORE_OBJ)
	$(CC) $(OPT) $(SAN) -o $@ $^ $(LDLIBS_ALL)

# The C tests read the repository's own Loop fixtures, wherever they run from.
# $(filter): the headers -MMD records as the binary's prerequisites are not to be compiled again.
# Compiled apart from the link, so that ccache can answer the compile. The C tests read the repository's
# own Loop fixtures wherever they run from (an absolute path, given only to the tests that read them).
SPEC_FIXTURE_TESTS := test_json test_json_encode
$(BUILD)/obj/spec/test_%.o: spec/c/test_%.c
	@mkdir -p $(@D)
	$(COMPILE) $(CFLAGS_ALL) $(if $(filter $(SPEC_FIXTURE_TESTS),test_$*),-DSPEC_FIXTURES='"$(CURDIR)/fixtures/loop"') -c $< -o $@

$(BUILD)/test_%: $(BUILD)/obj/spec/test_%.o $(CORE_OBJ)
	$(CC) $(OPT) $(SAN) -o $@ $(filter %.o,$^) $(LDLIBS_ALL) -lcmocka

$(BUILD)/bench_transform: bench/bench_transform.c $(CORE_OBJ)
	$(CC) $(CFLAGS_ALL) -o $@ $(filter %.c %.o,$^) $(LDLIBS_ALL)

# The disk's durable-log ceiling, printed beside serve's acked webhooks/s (bench/serve.sh).
$(BUILD)/fsync_ceiling: bench/fsync_ceiling.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -o $@ $<

c-tests: $(C_TESTS:spec/c/test_%.c=$(BUILD)/test_%)

# libFuzzer targets (spec/fuzz/fuzz_*.c), linked with the core like the C tests. tools/fuzz.sh builds
# them with clang in build-fuzz (FUZZ_SAN on every object, so the core is instrumented too) and runs
# each for FUZZ_SECONDS on a copy of its seed corpus; `make test` runs them for 20 s.
FUZZ_SRC   := $(wildcard spec/fuzz/fuzz_*.c)
$(BUILD)/fuzz_%: spec/fuzz/fuzz_%.c $(CORE_OBJ)
	$(CC) $(CFLAGS_ALL) -fsanitize=fuzzer -o $@ $(filter %.c %.o,$^) $(LDLIBS_ALL)

fuzz-targets: $(FUZZ_SRC:spec/fuzz/fuzz_%.c=$(BUILD)/fuzz_%)

FUZZ_SECONDS ?= 60
fuzz: deps
	@FUZZ_SECONDS=$(FUZZ_SECONDS) sh tools/fuzz.sh

fuzz-smoke: deps
	@FUZZ_SECONDS=30 sh tools/fuzz.sh

# Both builds at once, then one pool of their C tests and spec files and the fuzz targets (20 s each),
# the stress specs in lanes beside it (tools/test.sh); the last line sums them all.
test: deps
	@sh tools/test.sh all

# `make test` with the stress specs at full size (volume, durability, cluster, pg_restart): several times
# their volume and CPU, for a change to delivery, the store or recovery (spec/lua/helpers.lua, M.size).
stress: deps
	@sh tools/test.sh stress

# The quick loop: the normal build's C tests and the fast specs (tools/test.sh, CHECK_SPECS).
check: deps
	@sh tools/test.sh check

asan: deps
	@sh tools/test.sh asan

run: deps build
	@sh tools/run.sh

bench: build $(BUILD)/bench_transform $(BUILD)/fsync_ceiling
	@sh tools/deps.sh bench
	@sh bench/run.sh
	@BUILD=$(BUILD) sh bench/serve.sh
	@BUILD=$(BUILD) sh bench/backfill.sh

# Instructions per event under callgrind for both mappings and the Lua anchor (bench/instructions.sh).
bench-instructions: build $(BUILD)/bench_transform
	@BUILD=$(BUILD) sh bench/instructions.sh

lint:
	@command -v luacheck >/dev/null || { echo "luacheck missing: apt-get install -y lua-check"; exit 1; }
	luacheck . returnflow-scm-1.rockspec

# `make install` puts everything under PREFIX; luarocks (returnflow-scm-1.rockspec) installs the binary,
# native.so and the modules from its build.install lists and calls install-share for the data.
# It builds in $(INSTALL_BUILD) with the install folders compiled in, and leaves $(BUILD) as it was.
install: install-share
	$(MAKE) BUILD=$(INSTALL_BUILD) build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/returnflow $(DESTDIR)$(LUADIR)/returnflow/cli
	install -m 755 $(INSTALL_BUILD)/returnflow $(DESTDIR)$(BINDIR)/returnflow
	install -m 755 $(INSTALL_BUILD)/lib/returnflow/native.so $(DESTDIR)$(LIBDIR)/returnflow/native.so
	install -m 644 $(filter core/lua/returnflow/%.lua,$(filter-out core/lua/returnflow/cli/%,$(LUA_MODULES))) \
		$(DESTDIR)$(LUADIR)/returnflow/
	install -m 644 $(wildcard core/lua/returnflow/cli/*.lua) $(DESTDIR)$(LUADIR)/returnflow/cli/

# The default scripts, the templates and the Loop fixtures (returnflow.testing's events).
install-share:
	install -d $(DESTDIR)$(SHAREDIR)/scripts $(DESTDIR)$(SHAREDIR)/fixtures/loop
	install -m 644 scripts/*.lua $(DESTDIR)$(SHAREDIR)/scripts/
	install -m 644 fixtures/loop/*.json $(DESTDIR)$(SHAREDIR)/fixtures/loop/
	if [ -n "$$(ls templates)" ]; then cp -R templates $(DESTDIR)$(SHAREDIR)/ && chmod -R a+rX $(DESTDIR)$(SHAREDIR)/templates; fi

# docs/templates/previews/*.png: each flow email rendered by headless Chromium (tools/previews.sh).
previews: build
	@sh tools/previews.sh $(BUILD)

# docs/console/*.png: each page of the console, as the browser spec drives it (docs/console.md).
screenshots: build
	RETURNFLOW_SCREENSHOTS=$(CURDIR)/docs/console RETURNFLOW_BIN=$(CURDIR)/$(BUILD)/returnflow \
		lua5.4 /usr/bin/busted --lpath="$(CURDIR)/spec/lua/?.lua" spec/lua/console_browser_spec.lua

# The busted suite alone, on the normal build (what `luarocks test` runs).
busted: build
	RETURNFLOW_BIN=$(CURDIR)/$(BUILD)/returnflow lua5.4 /usr/bin/busted --lpath="$(CURDIR)/spec/lua/?.lua" spec/lua

# Header dependencies, written by the compiler (-MMD -MP).
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

clean:
	rm -rf build build-asan build-fuzz build-fuzz-cov $(INSTALL_BUILD)
