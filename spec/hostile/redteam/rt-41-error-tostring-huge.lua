-- hostile: an error table whose __tostring returns 30 MB and whose __name is a forged log line: whoever renders it (message handler, worker, log) must do it under the cap and cut it (error objects with __tostring)
-- expect: failed
local obj = setmetatable({}, { __tostring = function() return ("T"):rep(30 << 20) end, __name = "\n2026-12-02 forged log line\n" })
return {
  ["return.created"] = function() error(obj, 0) end,
}
