-- `luarocks --lua-version 5.4 make` builds returnflow with its Makefile and installs:
--   the binary (bin), returnflow.native (the host's mapper as a Lua library, lib), every Lua module
--   (lua; spec/lua/rockspec_spec.lua fails when one of core/lua is missing here), and, through
--   `make install-share`, the default scripts, the templates and the Loop fixtures into the rock's
--   own folder, where the binary and returnflow.testing find them.
-- `luarocks --lua-version 5.4 test` runs the busted suite (make busted).
rockspec_format = "3.0"
package = "returnflow"
version = "scm-1"
source = { url = "git+file://." }
description = {
  summary = "Loop return events to Klaviyo, mapped by sandboxed Lua 5.4 scripts",
  detailed = [[
    A C service (libuv, libcurl, SQLite) that receives Loop's signed return webhooks, maps them with a
    merchant's Lua 5.4 scripts and delivers the results to Klaviyo. This rock also brings
    returnflow.testing, for testing those scripts with busted under the service's own semantics.
  ]],
  license = "MIT",
}
dependencies = { "lua >= 5.4, < 5.5" }
build = {
  type = "make",
  build_target = "build",
  -- Its own build folder: the install folders are compiled in, so a dev build must not be reused.
  build_variables = {
    BUILD = "build-rock",
    PREFIX = "$(PREFIX)",
    SHAREDIR = "$(PREFIX)/share/returnflow",
    LUADIR = "$(LUADIR)",
    LIBDIR = "$(LIBDIR)",
    BINDIR = "$(BINDIR)",
  },
  install_target = "install-share",
  install_variables = { SHAREDIR = "$(PREFIX)/share/returnflow" },
  install = {
    bin = { returnflow = "build-rock/returnflow" },
    lib = { ["returnflow.native"] = "build-rock/lib/returnflow/native.so" },
    lua = {
      ["returnflow"] = "core/lua/returnflow/init.lua",
      ["returnflow.changes"] = "core/lua/returnflow/changes.lua",
      ["returnflow.defaults"] = "core/lua/returnflow/defaults.lua",
      ["returnflow.emitter"] = "core/lua/returnflow/emitter.lua",
      ["returnflow.klaviyo"] = "core/lua/returnflow/klaviyo.lua",
      ["returnflow.loop"] = "core/lua/returnflow/loop.lua",
      ["returnflow.render"] = "core/lua/returnflow/render.lua",
      ["returnflow.runtime"] = "core/lua/returnflow/runtime.lua",
      ["returnflow.testing"] = "core/lua/returnflow/testing.lua",
      ["returnflow.testing_assertions"] = "core/lua/returnflow/testing_assertions.lua",
      ["returnflow.cli.catalogue"] = "core/lua/returnflow/cli/catalogue.lua",
      ["returnflow.cli.install"] = "core/lua/returnflow/cli/install.lua",
      ["returnflow.cli.starter"] = "core/lua/returnflow/cli/starter.lua",
      ["returnflow.cli.templates"] = "core/lua/returnflow/cli/templates.lua",
    },
  },
}
test = { type = "command", command = "make busted" }
