-- Exchange Out Of Stock: tells the customer that an item they chose in exchange is out of stock and
-- that the return waits for review, when Loop moves the return to review for that reason.
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

-- The exchange products Loop marks out of stock.
local function out_of_stock(line) return line.out_of_stock == true end

return {
  ["return.updated"] = function(ret, out)
    if ret.state ~= "review" then return end
    local items = loop.grouped_items(ret, out_of_stock, "exchanges")
    if #items == 0 then return end
    out:track("Exchange Out Of Stock", {
      return_id = loop.return_id(ret),
      order = loop.value(ret.order_name, null),
      status_page_url = loop.value(ret.status_page_url, null),
      out_of_stock_items = items,
    })
  end,
}
