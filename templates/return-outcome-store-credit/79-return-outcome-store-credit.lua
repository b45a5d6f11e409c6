-- Return confirmation: store credit: confirms a return that ends in store credit
-- This file adds to the default "Loop Return Created" what the email shows: the items, grouped per
-- product, and the amounts.
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

return {
  changes = {
    ["Loop Return Created"] = { properties = {
      items = function(ret) return loop.grouped_items(ret) end,
      credit_amount = function(ret) return loop.money(ret.gift_card) or 0 end,
      currency = function(ret) return loop.value(ret.currency, null) end,
      currency_decimals = function(ret) return loop.currency_decimals(loop.value(ret.currency)) end,
    } },
  },
}
