-- hostile: string.rep("", maxinteger): a C loop that neither allocates nor runs Lua (ran for ever)
-- expect: harmless
-- cap: 0.2
return { ["return.created"] = function(ev, out)
  local s = string.rep("", math.maxinteger)
  local t = ("").rep("", math.maxinteger, "")
  assert(s == "" and t == "")
end }
