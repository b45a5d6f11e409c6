--- The lease statements on PostgreSQL (core/store/pg/lease.c): the C tests of spec/c/test_pg_lease.c
-- against a private PostgreSQL cluster, never a mock. They hold what the cluster rests on: one holder a
-- tenant, a take only when free and at the published scripts version, a take that waits for the
-- owner's fenced transaction and puts its requests in flight back in the queue, and a node that lost
-- its lease marks nothing in flight.
local helpers = require "helpers"
local pg = require "pg"

describe("the lease statements on PostgreSQL", function()
  local cluster
  before_each(function() cluster = pg.start() end)
  after_each(function()
    if cluster then cluster:stop() end
    helpers.cleanup()
  end)

  it("pass their C tests", function()
    local report = pg.run_c_test(cluster, "test_pg_lease", "RETURNFLOW_TEST_PG")
    assert.truthy(report:match("%[  PASSED  %] 6 test%(s%)"), report)
  end)
end)
