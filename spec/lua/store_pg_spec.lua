--- The store's interface on PostgreSQL: the C tests of the store (spec/c/test_store.c, every function
-- of store_db.h, outbox.h and the journal writer) run against a private PostgreSQL cluster, as they
-- run against SQLite in `make check`; and `returnflow store migrate` creates the schema once, twice
-- harmlessly, from two processes at once without a race.
local helpers = require "helpers"
local pg = require "pg"

local h_quote = helpers.quote

describe("the PostgreSQL store", function()
  local cluster
  before_each(function() cluster = pg.start() end)
  after_each(function()
    if cluster then cluster:stop() end
    helpers.cleanup()
  end)

  it("passes the store's C tests (every store_db.h operation)", function()
    local report = pg.run_c_test(cluster, "test_store", "RETURNFLOW_TEST_STORE_URL")
    assert.truthy(report:match("%[  PASSED  %] 13 test%(s%)"), report)
    -- SQLite's only: the missing file's, and the checkpointer's
    assert.truthy(report:match("%[  SKIPPED %] 2 test"), report)
  end)

  it("store migrate creates the schema once, from three processes at once, and names the store safely", function()
    local url = cluster:url_of() .. "&password=pw-0c41"               -- trust auth: the password is ignored
    local cmd = {}
    for i = 1, 3 do
      cmd[i] = string.format("%s store migrate --data %s >%s 2>&1; echo $? >>%s", h_quote(helpers.bin), h_quote(url),
                             h_quote(cluster.dir .. "/migrate." .. i), h_quote(cluster.dir .. "/codes"))
    end
    helpers.sh_ok("(" .. table.concat(cmd, ") & (") .. ") & wait")
    assert.equal("0\n0\n0\n", helpers.read(cluster.dir .. "/codes"))
    for i = 1, 3 do
      local out = helpers.read(cluster.dir .. "/migrate." .. i)
      assert.truthy(out:find("the schema is up to date", 1, true), out)
      assert.falsy(out:find("pw-0c41", 1, true), out)
    end
    local conn = cluster:connect()
    local cur = assert(conn:execute("SELECT count(*), max(version) FROM schema_version"))
    local n, version = cur:fetch()
    cur:close()
    conn:close()
    -- one row, naming the last step of core/store/pg/pg_schema.c's list (every step ran once)
    local source = helpers.read(helpers.root .. "/core/store/pg/pg_schema.c")
    local steps = select(2, assert(source:match("steps%[%] = {([^}]*)}")):gsub("v%d+", ""))
    assert.same({ "1", tostring(steps) }, { n, version })
    -- SQLite's file tools say what to use instead.
    local _, err, code = helpers.run({ "store", "check", "--data", url })
    assert.equal(2, code)
    assert.truthy(err:find("pg_dump", 1, true), err)
    assert.falsy(err:find("pw-0c41", 1, true), err)
  end)
end)
