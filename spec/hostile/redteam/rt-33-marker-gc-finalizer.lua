-- hostile: adds a spinning __gc to the host's json.object/json.array marker metatables (reached by getmetatable), so tables marked later get finalizers that run between events or at lua_close, outside any cap (__gc finalizers)
-- expect: harmless
local _, json = pcall(require, "returnflow.json")
return {
  ["return.created"] = function()
    pcall(function()
      local spin = function() while true do end end
      getmetatable(json.object()).__gc = spin
      getmetatable(json.array()).__gc = spin
    end)
    for _ = 1, 100 do json.object({}) json.array({}) end
  end,
}
