-- hostile: a plain find whose naive search is quadratic (long C call, no allocation)
-- expect: harmless
-- cap: 0.5
return { ["return.created"] = function(ev, out)
  local s = ("a"):rep(8e6)
  local needle = ("a"):rep(4e6) .. "b"
  assert(not s:find(needle, 1, true))
end }
