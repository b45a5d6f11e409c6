-- hostile: keeps ~22 MB alive until its handler returns, then maps normally: the next events must not fail on the memory cap because of this event's garbage (memory: GC before refusing)
-- expect: harmless
return {
  ["return.created"] = function()
    local keep = {}
    for i = 1, 22 do keep[i] = ("g"):rep((1 << 20) + i) end
    return #keep
  end,
}
