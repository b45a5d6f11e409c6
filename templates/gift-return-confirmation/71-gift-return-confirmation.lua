-- Gift Return Confirmation: confirms a gift return to the person who received the gift (Loop's gift
-- return request), with the items and the store credit they will get once the items are back.
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

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
      currency_decimals = loop.currency_decimals(currency),
      items = loop.grouped_items(ret),
    })
  end,
}
