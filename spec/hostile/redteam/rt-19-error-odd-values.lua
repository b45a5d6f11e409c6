-- hostile: error values of every odd type (thread, function, light userdata, NaN, a table with __tostring/__name/__len/__concat that spin), then a thread: the reason must be built without running script code (error objects)
-- expect: failed
local _, json = pcall(require, "returnflow.json")
local spin = function() while true do end end
local odd = setmetatable({}, { __tostring = spin, __name = "Odd", __len = spin, __concat = spin, __call = spin })
return {
  ["return.created"] = function()
    for _, v in ipairs({ 0 / 0, print, odd, true, type(json) == "table" and json.null or false }) do pcall(error, v) end
    error(coroutine.create(spin), 0)
  end,
}
