-- The repository is all it needs: a clone of its HEAD into an empty folder, with nothing beside it,
-- passes `make check` (the C tests and the fast specs), and leaves no process and no folder behind.
--
-- Run once per `make test` (tools/test.sh, ONCE_SPECS), never from `make check` itself (it would
-- recurse). It builds a whole normal build in the clone, so it is the slowest spec file.
local h = require "helpers"
local lfs = require "lfs"

describe("a clone of the repository", function()
  teardown(h.cleanup)

  it("passes `make check` in an empty folder with nothing beside it, and leaves nothing behind", function()
    local top = h.tempdir()
    local tmp = top .. "/tmp"
    assert(lfs.mkdir(tmp))
    h.sh_ok("git clone -q " .. h.quote(h.root) .. " " .. h.quote(top .. "/clone"))
    assert.same({ "clone", "tmp" }, h.entries(top))

    local out, err, code = h.sh(string.format("cd %s && TMPDIR=%s make -s check", h.quote(top .. "/clone"),
                                              h.quote(tmp)))

    local last = h.lines(out)[#h.lines(out)] or ""
    assert.equal(0, code, out .. err)
    local passed, failed = last:match("^(%d+) passed, (%d+) failed$")
    assert.truthy(passed, "the last line is not the counts: " .. last)
    assert.equal("0", failed)
    assert.truthy(tonumber(passed) > 100, last)
    assert.same({}, h.entries(tmp))
    assert.same({}, h.processes_using(top))
  end)
end)
