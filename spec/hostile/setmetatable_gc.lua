-- hostile: plants finalizers (a __gc added after setmetatable, and one on the marker metatable)
-- that would run at lua_close with no cap
-- expect: harmless
return { ["return.created"] = function(ev, out)
  local mt = {}
  local t = setmetatable({}, mt)
  mt.__gc = function() while true do end end
  pcall(setmetatable, {}, { __gc = function() while true do end end })
  _G.keep = t
end }
