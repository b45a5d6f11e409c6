-- hostile: appends actions of the wrong types to the emitter's action list (host reads them in C)
-- expect: failed
return { ["return.created"] = function(ev, out)
  out:track("Hostile", {})
  out.actions[#out.actions + 1] = { kind = "track", metric = {}, properties = 5, time = {} }
  out.actions[#out.actions + 1] = { kind = "schedule", key = {}, at = 12 }
end }
