-- hostile: fails its event with a 12 MB reason: must be cut on its way to the result, the dead letter and the log (protocol: huge reasons)
-- expect: failed
-- reason: ^RRRR
return {
  ["return.created"] = function(_, out)
    out:fail(("R"):rep(12 << 20))
  end,
}
