-- hostile: (""):rep(maxinteger, "") via the string metatable, which reaches the host's own string table rather than the script's guarded copy: 2^63 empty copies (watchdog: pure-C long call)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function()
    return (""):rep(math.maxinteger, "")
  end,
}
