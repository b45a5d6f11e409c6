-- Exchange Out Of Stock: tells the customer that an item they chose in exchange is out of stock and
-- that the return waits for review, when Loop moves the return to review for that reason.
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

-- The out-of-stock exchange products, one entry each: Loop sends one line per unit.
local function out_of_stock_items(ret)
  local items, seen = loop.array(), {}
  for _, line in ipairs(loop.value(ret.exchanges, {})) do
    if line.out_of_stock == true then
      local key = loop.id(line.variant_id) or loop.value(line.title, "")
      if seen[key] then
        seen[key].quantity = seen[key].quantity + 1
      else
        seen[key] = {
          name = loop.value(line.title, ""),
          image = loop.value(line.image) or loop.value(line.product_image, ""),
          quantity = 1,
        }
        items[#items + 1] = seen[key]
      end
    end
  end
  return items
end

return {
  ["return.updated"] = function(ret, out)
    if ret.state ~= "review" then return end
    local items = out_of_stock_items(ret)
    if #items == 0 then return end
    out:track("Exchange Out Of Stock", {
      return_id = loop.return_id(ret),
      order = loop.value(ret.order_name, null),
      status_page_url = loop.value(ret.status_page_url, null),
      out_of_stock_items = items,
    })
  end,
}
