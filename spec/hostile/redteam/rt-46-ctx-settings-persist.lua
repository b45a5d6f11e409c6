-- hostile: rewrites the per-event settings reachable as out.ctx (tenant, key kind, revision, backfill, segments property, recall, now), then fails its event: the next events must use the host's settings (state leak: settings)
-- expect: failed
-- reason: planted
return {
  ["return.created"] = function(_, out)
    pcall(function()
      local c = out.ctx
      c.tenant, c.revision, c.backfill = "bystander", "1999-01-01", true
      c.segments_property, c.now = "pwned", 0
      c.recall = function() return "PWNED" end
    end)
    out:fail("planted")
  end,
}
