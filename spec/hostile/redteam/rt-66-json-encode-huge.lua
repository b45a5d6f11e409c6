-- hostile: returnflow.json.encode of one 100 KB string referenced 20,000 times: a 2 GB encode into a host buffer from 100 KB of Lua memory (memory: big values encoded outside the cap)
-- expect: failed
-- reason: cap
local _, json = pcall(require, "returnflow.json")
return {
  ["return.created"] = function()
    local s = ("e"):rep(100000)
    local t = {}
    for i = 1, 20000 do t[i] = s end
    local text, err = json.encode(t)
    error("encoded " .. tostring(text and #text) .. " bytes: " .. tostring(err), 0)
  end,
}
