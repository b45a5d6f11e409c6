-- Gift Return Confirmation: confirms a gift return to the person who received the gift (Loop's gift
-- return request), with the items and the store credit they will get once the items are back.
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

-- ISO 4217 currencies with no minor unit: their amounts are shown without decimals.
local WHOLE_CURRENCIES = {
  BIF = true, CLP = true, DJF = true, GNF = true, ISK = true, JPY = true, KMF = true, KRW = true, PYG = true,
  RWF = true, UGX = true, UYI = true, VND = true, VUV = true, XAF = true, XOF = true, XPF = true,
}

local function currency_decimals(currency)
  if WHOLE_CURRENCIES[currency] then return 0 end
  return 2
end

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
    if ret.is_gift_return ~= true then return end
    local currency = loop.value(ret.currency)
    out:track("Gift Return Confirmation", {
      return_id = loop.return_id(ret),
      order = loop.value(ret.order_name, null),
      status_page_url = loop.value(ret.status_page_url, null),
      return_by = loop.return_by(ret.created_at) or null,
      credit_amount = loop.money(ret.gift_card) or 0,
      currency = loop.value(currency, null),
      currency_decimals = currency_decimals(currency),
      items = returned_items(ret),
    })
  end,
}
