-- First return: welcomes a customer to their first return
-- This file adds to the default "Loop Return Created" what the email shows: the items, grouped per
-- product.
local loop = require "returnflow.loop"

return {
  changes = {
    ["Loop Return Created"] = { properties = {
      items = function(ret) return loop.grouped_items(ret) end,
    } },
  },
}
