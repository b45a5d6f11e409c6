-- hostile: loads binary chunks and reaches string.dump
-- expect: harmless
return { ["return.created"] = function(ev, out)
  if string.dump or ("").dump then error("string.dump reachable") end
  local ok, f = pcall(load, "\27Lua\84\0", "x", "b")
  if ok and f then error("binary chunk loaded") end
  local g = load("\27Lua\84\0")
  if g then error("binary chunk loaded by default") end
end }
