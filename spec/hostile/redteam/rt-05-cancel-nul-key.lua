-- hostile: a cancel key with a NUL byte: cut at the NUL it would cancel "expiring:8812745" (another schedule) instead of the one named (protocol: NULs in keys)
-- expect: failed
-- reason: cancel
return {
  ["return.created"] = function(_, out)
    out:cancel("expiring:8812745\0-not-this-one")
  end,
}
