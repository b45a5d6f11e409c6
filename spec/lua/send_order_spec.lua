-- `returnflow send` maps its input in chunks of 128 (core/batch/job_pipe.c): its mapping thread maps
-- one chunk while the job's thread stores the chunk before it. What an event recalls must be what
-- every event before it remembered, in input order. The worker drops what its events remembered
-- before each chunk and asks the mapping thread, which answers from what the job committed: the
-- chunk being stored is not there yet. So the job checks each chunk's reads against what the chunk
-- it stored meanwhile wrote, and maps again from the first event that read such a key (without that
-- check, this spec fails: tried).
--
-- So: 2,816 returns, each of its own customer (two keys each, 22 chunks) but eleven of one customer,
-- made one minute apart, at the last event of a chunk and the first of the next, past the sixteenth.
-- The default scripts count a customer's returns (scripts/10-returns.lua): the counts must be 1, 2,
-- ... 11, each return's place among the customer's returns in time.
local h = require "helpers"

local BATCH = 128                             -- job_pipe.h's PIPE_CHUNK
local N = 22 * BATCH
local REPEAT = "repeat@example.com"

local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%S+00:00", t) end

describe("send's batches", function()
  teardown(h.cleanup)

  it("recall what every event before remembered, the batch being stored included", function()
    local dir = h.serve_dir()                 -- a dry tenant: the requests go to data/dry/shop.ndjson
    local ev = h.fixture("return.created.json")
    ev.id, ev.customer, ev.created_at = "@ID@", "@EMAIL@", "@CREATED@"
    ev.customer_detail.email = "@EMAIL@"
    local template = h.encode(ev)
    local start = os.time() - 86400
    local lines, repeats = {}, {}
    for i = 1, N do
      local at = i % BATCH
      local mine = i > 16 * BATCH and i <= 22 * BATCH - 1 and (at == 0 or at == 1)
      local email = mine and REPEAT or ("customer+" .. i .. "@example.com")
      if mine then repeats[#repeats + 1] = tostring(9000000 + i) end
      lines[i] = (template:gsub("@ID@", tostring(9000000 + i)):gsub("@EMAIL@", email)
                          :gsub("@CREATED@", iso(start + i * 60)))
    end
    assert.equal(11, #repeats)
    local file = h.tempfile(table.concat(lines, "\n") .. "\n", ".ndjson")

    local out, err, code = h.sh(string.format("cd %s && exec %s send -q --tenant shop %s", h.quote(dir),
                                              h.quote(h.bin), h.quote(file)))
    h.assert_no_sanitizer_report(err, "send")
    assert.equal(0, code, out .. err)
    assert.truthy(err:find("send: " .. N .. " events read: " .. N .. " mapped, 0 dropped, 0 failed", 1, true), err)

    local counts = {}
    for line in io.lines(dir .. "/data/dry/shop.ndjson") do
      if line:find(REPEAT, 1, true) and line:find("Loop Return Created", 1, true) then
        local attrs = h.decode(line).body.data.attributes
        counts[#counts + 1] = attrs.properties.return_id .. "=" .. tostring(attrs.properties.returns_count)
      end
    end
    local want = {}
    for k, id in ipairs(repeats) do want[k] = id .. "=" .. k end
    assert.same(want, counts)
  end)
end)
