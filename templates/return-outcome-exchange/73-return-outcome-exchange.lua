-- Return confirmation: exchange: confirms a return that includes an exchange, with the new items, when the return is created
-- This file adds to the default "Loop Return Created" what the email shows: the items, grouped per
-- product, and the exchange items.
local loop = require "returnflow.loop"

return {
  changes = {
    ["Loop Return Created"] = { properties = {
      items = function(ret) return loop.grouped_items(ret) end,
      exchange_items = function(ret) return loop.grouped_items(ret, nil, "exchanges") end,
    } },
  },
}
