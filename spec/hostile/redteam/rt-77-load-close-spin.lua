-- hostile: a to-be-closed variable at the top level of the file whose __close never returns: it runs as the chunk ends, at load time (__close; hang at load time)
-- expect: refused
-- reason: cap
local guard <close> = setmetatable({}, { __close = function() while true do end end })
return {}
