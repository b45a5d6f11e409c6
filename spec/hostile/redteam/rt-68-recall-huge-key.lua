-- hostile: out:recall with an 8 MB key, then 64 recalls with 1 MB keys: a frame far over any channel bound; it must be refused or answered nil, never kill or wedge the channel (protocol: huge recall keys)
-- expect: harmless
-- cap: 2
return {
  ["return.created"] = function(_, out)
    local big = ("K"):rep(8 << 20)
    pcall(out.recall, out, big)
    big = nil
    local k = ("k"):rep(1 << 20)
    for i = 1, 64 do pcall(out.recall, out, k .. i) end
  end,
}
