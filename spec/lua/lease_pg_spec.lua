--- The lease statements on PostgreSQL (core/store/pg/lease.c): the C tests of spec/c/test_pg_lease.c
-- against a private PostgreSQL cluster, never a mock. They hold what the cluster rests on: one holder a
-- tenant, a take only when free and at the published scripts version, a take that waits for the
-- owner's fenced transaction and puts its requests in flight back in the queue, and a node that lost
-- its lease marks nothing in flight.
local helpers = require "helpers"
local pg = require "pg"

local test_pg_lease = helpers.bin:gsub("/[^/]*$", "") .. "/test_pg_lease"

describe("the lease statements on PostgreSQL", function()
  local cluster
  before_each(function() cluster = pg.start() end)
  after_each(function()
    if cluster then cluster:stop() end
    helpers.cleanup()
  end)

  it("pass their C tests", function()
    assert(helpers.sh("test -x " .. helpers.quote(test_pg_lease) .. " && echo yes") == "yes\n",
           test_pg_lease .. " is missing: the suite builds it (make c-tests)")
    local out, err, code = helpers.sh("RETURNFLOW_TEST_PG=" .. helpers.quote(cluster.url) .. " "
                                      .. helpers.quote(test_pg_lease))
    local report = out .. err                  -- cmocka's summary goes to standard error
    assert.equal(0, code, report)
    assert.truthy(report:match("%[  PASSED  %] 6 test%(s%)"), report)
  end)
end)
