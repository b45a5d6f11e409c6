-- Return Cancelled: tells the customer their return was cancelled and nothing more will happen with
-- it (no refund, credit or exchange), when Loop moves the return to cancelled.
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

-- One entry per product: Loop sends one line per unit, so a repeated line is one more of the same.
local function returned_items(ret)
  local items, seen = loop.array(), {}
  for _, line in ipairs(loop.items(ret)) do
    local key = loop.id(line.line_item_id) or loop.value(line.title, "")
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
  return items
end

return {
  ["return.updated"] = function(ret, out)
    if ret.state ~= "cancelled" then return end
    out:track("Return Cancelled", {
      return_id = loop.return_id(ret),
      order = loop.value(ret.order_name, null),
      status_page_url = loop.value(ret.status_page_url, null),
      items = returned_items(ret),
    })
  end,
}
