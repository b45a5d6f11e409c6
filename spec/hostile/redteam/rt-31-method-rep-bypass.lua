-- hostile: (""):rep(maxinteger, "") via the string metatable, which reaches the host's own string table rather than the script's guarded copy: 2^63 empty copies (watchdog: pure-C long call); a guard may make it instant, then the script fails itself
-- expect: failed
return {
  ["return.created"] = function()
    local s = (""):rep(math.maxinteger, "")
    error("rep returned " .. #s .. " bytes", 0)
  end,
}
