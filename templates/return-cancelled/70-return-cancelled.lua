-- Return Cancelled: tells the customer their return was cancelled and nothing more will happen with
-- it (no refund, credit or exchange), as a Klaviyo flow on the default "Loop Return Cancelled".
-- This file adds the items the email lists, grouped per product.
local loop = require "returnflow.loop"

return {
  changes = {
    ["Loop Return Cancelled"] = { properties = {
      items = function(ret) return loop.grouped_items(ret) end,
    } },
  },
}
