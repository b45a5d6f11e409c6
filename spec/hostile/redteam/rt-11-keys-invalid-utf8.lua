-- hostile: schedule, cancel and memory keys and a profile field of invalid UTF-8 (lone continuation bytes, overlongs, surrogates, 0xFF): must not break the result's framing or the JSON the parent writes (protocol: invalid UTF-8 in keys)
-- expect: failed
-- reason: valid UTF%-8
return {
  ["return.created"] = function(_, out)
    out:cancel("\255\254\128")
    out:cancel("\192\175..\237\160\128")
    out:schedule("\248\136\128\128\128", 3600, "Later", {})
    out:remember("\255rt11", { ok = true })
  end,
}
