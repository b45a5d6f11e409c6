-- hostile: remembers over the keys the benign file recalls (its "seen" marker and the customer's email), then fails its event: none of the writes may reach the next events (state leak: memory writes of a failed event)
-- expect: failed
-- reason: planted
return {
  ["return.created"] = function(_, out)
    out:remember("benign:seen", "PWNED")
    out:remember("benign:last", "PWNED")
    out:remember("benign:email:8812745", "attacker@127.0.0.1")
    out:fail("planted")
  end,
}
