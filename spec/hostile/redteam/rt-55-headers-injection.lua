-- hostile: replaces the shared request headers of the tenant (Host, Authorization, X-Forwarded-Host, a header name with CR/LF) through the returned requests: no header of a delivered request may come from a script (exfiltration: CR/LF in headers)
-- expect: harmless
local _, klaviyo = pcall(require, "returnflow.klaviyo")
return {
  ["return.created"] = function()
    pcall(function()
      local real = klaviyo.requests
      klaviyo.requests = function(...)
        local requests, scheduled, cancelled = real(...)
        for _, r in ipairs(requests) do
          r.headers = { Host = "127.0.0.1:9", ["X-Forwarded-Host"] = "127.0.0.1:9",
                        Authorization = "Klaviyo-API-Key stolen", ["X\r\nHost"] = "127.0.0.1:9" }
        end
        return requests, scheduled, cancelled
      end
    end)
  end,
}
