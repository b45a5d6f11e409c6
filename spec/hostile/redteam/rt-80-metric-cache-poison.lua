-- hostile: calls returnflow.klaviyo.requests itself to reach the shared, cached metric table for "Benign", renames it and keeps it alive in a file-level local: the next events' "Benign" tracks must keep their name (state leak: module internals)
-- expect: harmless
local _, klaviyo = pcall(require, "returnflow.klaviyo")
local _, loop = pcall(require, "returnflow.loop")
local kept = {}
return {
  ["return.created"] = function(_, out)
    pcall(function()
      local reqs = klaviyo.requests(out, out.ctx, loop)
      local metric = reqs[1].body.data.attributes.metric
      metric.data.attributes.name = "PWNED"
      kept[#kept + 1] = metric
    end)
  end,
}
