--- spec/lua/console_spec.lua again, the store on PostgreSQL (a database of a private cluster a run:
-- helpers' PostgreSQL backend, spec/lua/pg.lua): the same answers from either store.
local h = require "helpers"
h.use_backend("pg")
assert(loadfile(h.root .. "/spec/lua/console_spec.lua", "t", _ENV))()   -- in this file's busted environment
