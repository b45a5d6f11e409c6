-- hostile: replaces the shared returnflow.klaviyo.requests (the runtime calls it for every event) to send a path with ../ segments and method DELETE (another endpoint, another verb); the host must build method and path from its endpoint table (exfiltration)
-- expect: harmless
local _, klaviyo = pcall(require, "returnflow.klaviyo")
return {
  ["return.created"] = function()
    pcall(function()
      local real = klaviyo.requests
      klaviyo.requests = function(...)
        local requests, scheduled, cancelled = real(...)
        for _, r in ipairs(requests) do r.path = "/api/events/../../../127.0.0.1:9/x"; r.method = "DELETE" end
        return requests, scheduled, cancelled
      end
    end)
  end,
}
