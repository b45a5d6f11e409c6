-- hostile: os.date with every conversion, local time and UTC, tables, huge and negative times, at event time (in a worker: after seccomp, first use of the time zone opens /etc/localtime): must not kill the worker (seccomp reach)
-- expect: harmless
local FORMATS = { "%c", "%x", "%X", "%Z", "%z", "%Ec", "%Oy", "%s", "%G-W%V-%u", "*t", "!*t", "!%c", "%%" }
return {
  ["return.created"] = function()
    local n = 0
    for _, f in ipairs(FORMATS) do
      for _, t in ipairs({ 0, 1790000000, -1, 2 ^ 40, math.maxinteger, 1e308 }) do
        if pcall(os.date, f, t) then n = n + 1 end
      end
    end
    pcall(os.date, "%Q")
    pcall(os.time, { year = 2 ^ 40, month = 1, day = 1 })
    pcall(os.time, { year = 2026, month = 1e9, day = -1e9 })
    assert(n > 0)
  end,
}
