-- hostile: schedules whose due time escapes the checks: an explicit event time hides a due in year 2999, and numeric offsets of 2^53 s, -1e12 s and NaN: the due carried to the parent must be checked like any time (protocol: schedule due; validation)
-- expect: failed
-- reason: schedule
return {
  ["return.created"] = function(_, out)
    for _, at in ipairs({ 2 ^ 53, -1e12, 0 / 0 }) do pcall(out.schedule, out, "rt75:n", at, "Later", {}) end
    out:schedule("rt75:far", "2999-01-01T00:00:00Z", "Later", {}, { time = "2026-10-02T14:21:07Z" })
  end,
}
