-- Return Delivered: tells the customer their parcel has reached the warehouse and that the refund,
-- credit or exchange comes next, as a Klaviyo flow on the default "Loop Label Updated" filtered on
-- tracking_status = delivered. This file adds the items, remembered from the return (label events
-- carry none).
local loop = require "returnflow.loop"

local KEY = "return-delivered:"

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
