-- Minimal for now: `luarocks --lua-version 5.4 make` builds and installs the binary, the Lua half and
-- the default scripts through the Makefile. (The script developer kit fills in testing and templates.)
rockspec_format = "3.0"
package = "returnflow"
version = "scm-1"
source = { url = "git+file://." }
description = {
  summary = "Loop return events to Klaviyo, mapped by sandboxed Lua 5.4 scripts",
  license = "MIT",
}
dependencies = { "lua >= 5.4, < 5.5" }
build = {
  type = "make",
  build_target = "build",
  install_target = "install",
  install_variables = {
    PREFIX = "$(PREFIX)",
    BINDIR = "$(BINDIR)",
    LUADIR = "$(LUADIR)",
    SHAREDIR = "$(PREFIX)/share/returnflow",
  },
}
test = { type = "command", command = "make test" }
