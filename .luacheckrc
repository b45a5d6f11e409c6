-- luacheck config: `make lint` checks every Lua file of the project with it.
-- Merchant scripts, templates and the Lua half of the host run in the sandbox (docs/mapping-api.md):
-- they get the sandbox's globals only, so a script that reaches for io or os.getenv fails lint
-- before it fails an event. Host-side tooling (returnflow.testing, the CLI modules, tools/, specs)
-- runs in plain Lua 5.4.
stds.returnflow_sandbox = {
  read_globals = {
    "assert", "error", "ipairs", "next", "pairs", "pcall", "xpcall", "rawequal", "rawget", "rawlen",
    "rawset", "select", "tonumber", "tostring", "type", "getmetatable", "setmetatable", "print", "load",
    "require", "_VERSION", "_G",
    string = { other_fields = true }, table = { other_fields = true }, math = { other_fields = true },
    utf8 = { other_fields = true }, coroutine = { other_fields = true },
    os = { fields = { "time", "date", "clock" } },
  },
}
stds.rockspec = {
  globals = { "rockspec_format", "package", "version", "source", "description", "dependencies",
              "build_dependencies", "test_dependencies", "build", "test", "supported_platforms" },
}

std = "lua54"
max_line_length = 130
self = false            -- methods like out:drop(reason) take self by convention
-- bench/anchors is vendored as it came (the benchmark's reference programs), not the project's code;
-- spec/hostile holds hostile scripts on purpose (globals written, arguments unused, loops that never end).
exclude_files = { "build*/**", ".git/**", "bench/anchors/**", "spec/hostile/**" }

files["scripts"] = { std = "returnflow_sandbox" }
files["templates"] = { std = "returnflow_sandbox" }
files["core/lua/returnflow"] = { std = "returnflow_sandbox" }
files["core/lua/returnflow/testing.lua"] = { std = "lua54" }
files["core/lua/returnflow/testing_assertions.lua"] = { std = "lua54" }
files["core/lua/returnflow/cli"] = { std = "lua54" }
files["spec"] = { std = "lua54+busted" }
files["**/*.rockspec"] = { std = "rockspec" }
