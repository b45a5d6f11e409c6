-- hostile: schedules for year 2999 while giving the event its own time
-- expect: failed
-- reason: schedule
return { ["return.created"] = function(ev, out)
  out:schedule("k", "2999-01-01T00:00:00Z", "Hostile", {}, { time = ev.created_at })
end }
