-- Events with no customer, or nothing a customer's profile needs: dropped on purpose, with the
-- reason reported, rather than left without a handler. A merchant who wants one (say, to alert a
-- team list) replaces its drop with a track on a profile of their choosing.
return {
  ["restock.requested"] = function(_, out)
    out:drop("restock events have no customer: nothing to send to Klaviyo (by design)")
  end,
  ["return.processing.failed"] = function(_, out)
    out:drop("processing failures are merchant-side and have no customer email (by design)")
  end,
  ["shipment.processed"] = function(_, out)
    out:drop("Happy Returns shipments are processed per drop-off box, for many returns, with no customer; "
             .. "each return's own label.updated events carry its parcel's progress (by design)")
  end,
  ["label.request.issued"] = function(_, out)
    out:drop("a label request is Loop asking the carrier for a label: label.created follows with the label "
             .. "and is the customer's event (by design)")
  end,
  ["label.request.cancelled"] = function(_, out)
    out:drop("a cancelled label request never reached the customer: no label was made (by design)")
  end,
}
