-- hostile: 2000 tracks sharing one properties table of 49 x 100 KB strings: ~4.9 MB per body, ~10 GB of host buffers (bodies, result arena, frames) from ~5 MB of Lua memory (protocol: huge result; memory: cap bypass via host buffers)
-- expect: failed
local big = ("B"):rep(100 * 1000 - 8)
local props = {}
for i = 1, 49 do props["p" .. i] = big end
return {
  ["return.created"] = function(_, out)
    for _ = 1, 2000 do out:track("Flood", props) end
  end,
}
