-- hostile: an error value whose __metatable is a table with an __eq that never returns: the host's "is this a Stop?" comparison runs it after the script returned (error objects with __eq)
-- expect: failed
local fake = setmetatable({}, { __eq = function() while true do end end })
return {
  ["return.created"] = function()
    error(setmetatable({}, { __metatable = fake }), 0)
  end,
}
