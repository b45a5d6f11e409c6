-- Exchange Order Created: tells the customer their exchange is on its way, with the new order's name
-- and the items in it, as a Klaviyo flow on the default "Loop Exchange Order Created" (one per
-- return, whichever of return.updated and return.closed brings it). This file adds the exchange
-- order's name as the email reads it and the exchange items, grouped per product.
local loop = require "returnflow.loop"

return {
  changes = {
    ["Loop Exchange Order Created"] = { properties = {
      exchange_order = function(_, action) return action.properties.exchange_order_name end,
      exchange_items = function(ret) return loop.grouped_items(ret, nil, "exchanges") end,
    } },
  },
}
