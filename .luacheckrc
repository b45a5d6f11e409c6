-- luacheck config: `make lint`. Scripts and returnflow's modules run in Lua 5.4's sandbox (see
-- docs/mapping-api.md); specs run under busted.
std = "lua54"
max_line_length = 130
self = false            -- methods like out:drop(reason) take self by convention
files["spec"] = { std = "+busted" }
