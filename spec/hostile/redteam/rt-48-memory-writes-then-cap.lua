-- hostile: remembers over the benign keys, then breaks the memory cap: the writes must be dropped with the event (state leak: memory writes of a failed event; all-or-nothing under a cap)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function(_, out)
    out:remember("benign:seen", "PWNED")
    out:remember("benign:last", "PWNED")
    out:remember("benign:email:8812745", "attacker@127.0.0.1")
    local t = {}
    for i = 1, 1e8 do t[i] = ("m"):rep(64, tostring(i)) end
  end,
}
