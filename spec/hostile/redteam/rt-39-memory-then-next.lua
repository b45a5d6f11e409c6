-- hostile: breaks the memory cap on the attack event with many small tables, then the next events must map exactly as before (memory: many small tables; state after a cap)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function()
    local t = {}
    for i = 1, 1e8 do t[i] = {} end
  end,
}
