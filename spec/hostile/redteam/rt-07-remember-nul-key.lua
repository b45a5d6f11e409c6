-- hostile: remember with a NUL in the key; cut at the NUL it overwrites "benign:seen" (or "benign:last"), which the next event recalls (protocol: NULs in memory keys; state leak)
-- expect: failed
-- reason: remember
return {
  ["return.created"] = function(_, out)
    out:remember("benign:seen\0x", "PWNED")
    out:remember("benign:last\0x", "PWNED")
  end,
}
