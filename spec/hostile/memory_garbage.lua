-- hostile: leaves more than the memory cap in garbage behind, then holds 24 of its 32 MiB: the cap
-- must count live data, not garbage (identical events must not alternate mapped and failed)
-- expect: harmless
-- cap: 4.0
local keep = {}
return { ["return.created"] = function(ev, out)
  for i = 1, 48 do local s = ("g"):rep(1 << 20) .. i end
  for i = 1, 4 do keep[i % 3] = ("k"):rep(4 << 20) .. i end
end }
