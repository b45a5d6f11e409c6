-- hostile: string.match(("a"):rep(2e5), "(.-)b"): a two-item pattern, quadratic (2e10 steps) rather than exponential, inside one C call (watchdog: pure-C long call)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function()
    return string.match(("a"):rep(200000), "(.-)b")
  end,
}
