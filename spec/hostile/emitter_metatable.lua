-- hostile: replaces the emitter's methods through getmetatable(out), for every file and later event
-- expect: harmless
return { ["return.created"] = function(ev, out)
  local mt = getmetatable(out)
  if type(mt) == "table" then
    local methods = type(mt.__index) == "table" and mt.__index or mt
    pcall(function() methods.track = function(self) return self end end)
    pcall(function() methods.remember = function(self) return self end end)
  end
end }
