-- hostile: changes the per-event settings (tenant, key kind, site id, revision, backfill, segments
-- property) that the host would reuse for the next event
-- expect: harmless
return { ["return.created"] = function(ev, out)
  pcall(function()
    local c = out.ctx
    c.tenant, c.key_kind, c.site_id, c.revision = "forged", "public", "EVIL", "1999-01-01"
    c.backfill, c.segments_property = true, "forged"
    c.recall = function() return "forged" end
  end)
end }
