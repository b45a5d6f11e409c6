-- hostile: properties whose tables carry __index/__pairs/__len/__tostring/__eq metamethods that spin: the host's encoder (after the handlers returned) must read them raw and never run script code outside the cap (error objects / host reads of script values)
-- expect: harmless
local spin = function() while true do end end
local mt = { __index = spin, __pairs = spin, __len = spin, __tostring = spin, __eq = spin, __lt = spin, __le = spin }
return {
  ["return.created"] = function(_, out)
    local inner = setmetatable({ x = 1 }, mt)
    local props = setmetatable({ a = inner, b = setmetatable({ 1, 2, 3 }, mt) }, mt)
    out:track("Meta", props)
  end,
}
