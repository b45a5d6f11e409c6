-- Refund Issued: tells the customer how much was refunded, and for which items, as a Klaviyo flow on
-- the default "Loop Refund Issued" (one per return, whichever of return.updated and return.closed
-- brings it). This file adds the amount and currency as the email shows them, and the refunded items.
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

-- The refunded products: the lines Loop closed with outcome "refund".
local function refunded(line) return line.outcome == "refund" end

return {
  changes = {
    ["Loop Refund Issued"] = { properties = {
      refund_amount = function(ret) return loop.money(ret.refund) end,
      currency = function(ret) return loop.value(ret.currency, null) end,
      currency_decimals = function(ret) return loop.currency_decimals(loop.value(ret.currency)) end,
      refunded_items = function(ret) return loop.grouped_items(ret, refunded) end,
    } },
  },
}
