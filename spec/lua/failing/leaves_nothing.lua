-- A run that fails on purpose, for spec/lua/leftovers_spec.lua (not a *_spec file: the suite does not
-- run it by itself). It starts what specs start (the Klaviyo stand-in, `returnflow serve`, a background
-- process, the request validator, temporary folders, a private PostgreSQL cluster with serve on it),
-- prints their pids, then fails without stopping anything and without a teardown: helpers.lua must end
-- them all when busted exits.
local h = require "helpers"

describe("a run that fails half-way", function()
  it("starts everything, then fails without stopping anything", function()
    local standin = h.start_standin({ "--quiet" })
    local server = h.start_serve(h.serve_dir())
    local sleeper = h.spawn("sleep 300")
    h.validate("{}")
    h.use_backend("pg")                     -- the run's cluster, and a serve whose store is on it
    local on_pg = h.start_serve(h.serve_dir())
    io.stdout:write(string.format("\nPIDS %s %s %s %s %s\n", standin.pid, server.pid, sleeper.pid, on_pg.pid,
                                  h.pg_cluster().pid))
    error("failing on purpose")
  end)
end)
