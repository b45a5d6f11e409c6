-- Exchange Out Of Stock: tells the customer that an item they chose in exchange is out of stock and
-- that the return waits for review, as a Klaviyo flow on the default "Loop Exchange Out Of Stock".
-- This file adds the out-of-stock items, grouped per product.
local loop = require "returnflow.loop"

-- The exchange products Loop marks out of stock.
local function out_of_stock(line) return line.out_of_stock == true end

return {
  changes = {
    ["Loop Exchange Out Of Stock"] = { properties = {
      out_of_stock_items = function(ret) return loop.grouped_items(ret, out_of_stock, "exchanges") end,
    } },
  },
}
