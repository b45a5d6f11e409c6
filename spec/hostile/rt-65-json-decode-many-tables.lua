-- hostile: returnflow.json.decode of a 12 MB text of 4 million empty arrays: the decoder's own buffers (tape) and 4M tables must count against the cap (memory: many small tables via the host decoder)
-- expect: failed
-- reason: cap
local _, json = pcall(require, "returnflow.json")
return {
  ["return.created"] = function()
    local text = "[" .. ("[],"):rep(4000000) .. "[]]"
    local v = json.decode(text)
    error("decoded " .. tostring(type(v)), 0)
  end,
}
