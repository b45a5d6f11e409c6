--- spec/lua/durability_spec.lua again, every store on PostgreSQL (a database of a private cluster a run:
-- helpers' PostgreSQL backend, spec/lua/pg.lua): the same behaviour, byte for byte, on either store.
local h = require "helpers"
h.use_backend("pg")
assert(loadfile(h.root .. "/spec/lua/durability_spec.lua", "t", _ENV))()   -- in this file's busted environment
