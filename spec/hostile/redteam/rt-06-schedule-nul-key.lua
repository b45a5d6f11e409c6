-- hostile: a schedule key with a NUL byte: cut at the NUL it replaces the schedule "expiring:8812745" of another return (protocol: NULs in keys)
-- expect: failed
-- reason: schedule
return {
  ["return.created"] = function(_, out)
    out:schedule("expiring:8812745\0evil", 86400, "Later", {})
  end,
}
