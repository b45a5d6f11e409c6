-- Return In Transit: tells the customer the carrier has their parcel, as a Klaviyo flow on the
-- default "Loop Label Updated" filtered on tracking_status = in_transit (one email: the later
-- out_for_delivery update does not pass the filter). The default event carries the order, the
-- status page, the carrier and the tracking; this file adds the items, remembered from the return
-- (label events carry none).
local loop = require "returnflow.loop"

local KEY = "return-in-transit:"

local function remember_items(ret, out)
  out:remember(KEY .. loop.return_id(ret), { items = loop.grouped_items(ret) })
end

return {
  ["return.created"] = remember_items,
  ["return.updated"] = remember_items,

  changes = {
    ["Loop Label Updated"] = { trigger = "label.updated", properties = {
      items = function(label, _, out)
        local ret = out:recall(KEY .. loop.return_id(label))
        return ret and ret.items or loop.array()
      end,
    } },
  },
}
