-- hostile: a chunk made by load() rewrites the tenant's shared library tables
-- expect: harmless
return { ["return.created"] = function(ev, out)
  local f = load("string.upper = function() return 'FORGED' end; math.floor = nil")
  pcall(f)
end }
