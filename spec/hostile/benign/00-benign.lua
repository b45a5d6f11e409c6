-- The benign neighbour of every hostile case (see spec/hostile/README.md): for every trigger it
-- tracks "Benign" with a few fields read from the event, and remembers one key that the next
-- event recalls, so anything a hostile file leaks into a later event changes that event's bytes.
local loop = require "returnflow.loop"

return {
  ["*"] = function(ev, out)
    local previous = out:recall("benign:last")
    out:identify { email = "benign@example.com" }
    out:track("Benign", {
      trigger = ev.trigger,
      id = loop.return_id(ev) or "none",
      state = type(ev.state) == "string" and ev.state or "none",
      items = type(ev.line_items) == "table" and #ev.line_items or 0,
      previous = type(previous) == "string" and previous or "none",
      upper = string.upper("benign"),
    })
    -- Not on the attack's own trigger: a failed attack event drops its whole result, this write
    -- included, and the next events must not depend on that.
    if ev.trigger ~= "return.created" then out:remember("benign:last", ev.trigger) end
  end,
}
