-- Return Confirmation without Shipping Labels: Loop's confirmation for a return that ships with no
-- label (labels are off in the return policy) or that the customer keeps (Keep Item). With a label,
-- return-confirmation sends the confirmation instead, once the label exists.
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
  ["return.created"] = function(ret, out)
    if loop.labels_enabled(ret) and not loop.keep_item(ret) then return end
    out:track("Return Confirmation Without Shipping Labels", {
      return_id = loop.return_id(ret),
      order = loop.value(ret.order_name, null),
      status_page_url = loop.value(ret.status_page_url, null),
      keep_item = loop.keep_item(ret),
      return_by = loop.return_by(ret.created_at) or null,
      items = returned_items(ret),
    })
  end,
}
