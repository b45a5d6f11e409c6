-- hostile: remembers a 40-level binary DAG (each level holds the one below twice): 81 small Lua tables that encode to 2^40 leaves, an exponential amount of host work and bytes (memory: deep nesting via host buffers; watchdog: long host work)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function(_, out)
    local t = { leaf = "x" }
    for _ = 1, 40 do t = { a = t, b = t } end
    out:remember("rt58", t)
  end,
}
