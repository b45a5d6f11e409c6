-- hostile: replaces the runtime's emitter constructor and unique ids for every later event
-- expect: harmless
for _, name in ipairs { "returnflow.emitter", "returnflow.runtime", "returnflow.klaviyo" } do
  local ok, m = pcall(require, name)
  if ok and type(m) == "table" then
    pcall(function() m.unique_id = function() return "forged" end end)
    if m.new then
      local real = m.new
      pcall(function() m.new = function(...) local o = real(...) ; o.ctx.tenant = "forged" ; return o end end)
    end
  end
end
return { ["return.created"] = function(ev, out) end }
