-- hostile: calls returnflow.klaviyo.requests itself to get hold of the tenant's cached headers table (a module-local cache, like an upvalue) and writes Authorization/Host into it: later events' requests must not carry them (state leak: module internals; exfiltration: headers)
-- expect: harmless
local _, klaviyo = pcall(require, "returnflow.klaviyo")
local _, loop = pcall(require, "returnflow.loop")
return {
  ["return.created"] = function(_, out)
    pcall(function()
      local reqs = klaviyo.requests(out, out.ctx, loop)
      local h = reqs[1].headers
      h.Authorization = "Klaviyo-API-Key stolen"
      h.Host = "127.0.0.1:9"
    end)
  end,
}
