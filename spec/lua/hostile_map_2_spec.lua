-- Shard 2 of 2 of the hostile-script suite under `map` (the runner: spec/lua/hostile_map.lua), loaded
-- into this spec file's environment (busted's describe, it and assert).
local h = require "helpers"
assert(loadfile(h.root .. "/spec/lua/hostile_map.lua", "t", _ENV))()(2, 2)
