-- Shard 1 of 4 of the hostile-script suite under `serve` (the runner: spec/lua/hostile_serve.lua), loaded
-- into this spec file's environment (busted's describe, it and assert).
local h = require "helpers"
assert(loadfile(h.root .. "/spec/lua/hostile_serve.lua", "t", _ENV))()(1, 4)
