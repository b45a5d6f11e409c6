-- hostile: appends raw entries to the emitter's memory-write list (a table key, a numeric key, a key ending in NUL, a light-userdata value) bypassing remember's checks, and returns normally: the host must refuse them (or the list must be out of reach, then the script fails itself) (host structures scripts can write)
-- expect: failed
local _, json = pcall(require, "returnflow.json")
return {
  ["return.created"] = function(_, out)
    local planted = pcall(function()
      local w = out.memory_writes
      w[#w + 1] = { key = {}, value = "tbl" }
      w[#w + 1] = { key = 12345, value = "num" }
      w[#w + 1] = { key = "benign:seen\0", value = "PWNED" }
      w[#w + 1] = { key = "benign:last\0", value = "PWNED" }
      w[#w + 1] = { key = "rt49", value = type(json) == "table" and json.null or print }
    end)
    if not planted then out:fail("memory writes out of reach") end
  end,
}
