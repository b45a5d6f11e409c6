-- hostile: 200 memory writes of one 8 MB string each: 1.6 GB of encoded values, arena and store rows from 8 MB of Lua memory (memory: cap bypass via host buffers; protocol: huge memory writes)
-- expect: failed
local big = ("M"):rep(8 << 20)
return {
  ["return.created"] = function(_, out)
    for i = 1, 200 do out:remember("rt10:" .. i, big) end
  end,
}
