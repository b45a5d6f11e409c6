-- hostile: table.move over a huge NEGATIVE range (mininteger+2 .. -2), which passes Lua's own "too many elements" check: ~2^63 empty moves in C (watchdog: pure-C long call; guard arithmetic)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function()
    return table.move({}, math.mininteger + 2, -2, 1, {})
  end,
}
