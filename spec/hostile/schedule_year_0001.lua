-- hostile: schedules for year 0001 while giving the event its own time (the due time went unchecked)
-- expect: failed
-- reason: schedule
return { ["return.created"] = function(ev, out)
  out:schedule("k", "0001-01-01T00:00:00Z", "Hostile", {}, { time = ev.created_at })
end }
