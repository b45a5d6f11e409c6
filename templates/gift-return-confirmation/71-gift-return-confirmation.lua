-- Gift Return Confirmation: confirms a gift return to the person who received the gift, as a Klaviyo
-- flow on the default "Loop Gift Return Request". This file adds the store credit they will get once
-- the items are back (Loop's gift_card amount) and the items, grouped per product.
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

return {
  changes = {
    ["Loop Gift Return Request"] = { properties = {
      credit_amount = function(ret) return loop.money(ret.gift_card) or 0 end,
      currency = function(ret) return loop.value(ret.currency, null) end,
      currency_decimals = function(ret) return loop.currency_decimals(loop.value(ret.currency)) end,
      items = function(ret) return loop.grouped_items(ret) end,
    } },
  },
}
