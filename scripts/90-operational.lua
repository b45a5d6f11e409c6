-- Operational events with no customer: nothing to put on a Klaviyo profile. They are dropped on
-- purpose, with the reason reported, rather than left without a handler. A merchant who wants them
-- (say, to alert a team list) replaces a drop with a track on a profile of their choosing.
return {
  ["restock.requested"] = function(_, out)
    out:drop("restock events have no customer: nothing to send to Klaviyo (by design)")
  end,
  ["return.processing.failed"] = function(_, out)
    out:drop("processing failures are merchant-side and have no customer email (by design)")
  end,
}
