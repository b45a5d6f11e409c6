-- hostile: a schedule key with a NUL byte (cut, it overwrites the schedule "expiring:8812745"), and a due time far in the past given as a time string (protocol: NULs in keys, unchecked due)
-- expect: failed
-- reason: schedule
return {
  ["return.created"] = function(_, out)
    out:schedule("expiring:8812745\0evil", "0001-01-01T00:00:00Z", "Later", {})
  end,
}
