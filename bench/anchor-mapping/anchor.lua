-- The anchors' mapping (bench/anchors/bare_transform.*) as a returnflow script: one event with the
-- same metric, profile (email only), unique_id, time, value and eleven properties. `make bench` runs it
-- beside the default scripts so the host's own cost can be compared with the anchors on equal work.
local rf = require "returnflow"

return {
  ["return.created"] = function(ev, out)
    local names, skus, reasons, parents, outcomes = rf.array(), rf.array(), rf.array(), rf.array(), rf.array()
    for i, li in ipairs(ev.line_items) do
      names[i], skus[i] = li.title, li.sku
      reasons[i], parents[i], outcomes[i] = li.return_reason, li.parent_return_reason, li.outcome
    end
    out:identify { email = ev.customer }
    out:profile { first_name = rf.null, last_name = rf.null, location = rf.null }
    out:track("Loop Return Created", {
      event_id = ev.trigger, return_id = ev.id, return_status = ev.state, order = ev.order_name,
      returned_product_names = names, returned_product_skus = skus,
      return_reasons = reasons, return_reason_parents = parents, return_outcome = outcomes,
      status_page_url = ev.status_page_url, tracking_number = ev.tracking_number,
    }, { value = tonumber(ev.total), time = ev.created_at, unique_id = "loop:" .. ev.id .. ":" .. ev.trigger })
  end,
}
