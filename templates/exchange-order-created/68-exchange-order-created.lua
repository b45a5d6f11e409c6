-- Exchange Order Created: tells the customer their exchange is on its way, with the new order's name
-- and the items in it, once Loop closes the return and places the exchange order. It arrives on both
-- return.updated (closed) and return.closed: one unique_id per return, so one email.
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

local function exchange_order_name(ret)
  for _, exchange in ipairs(loop.value(ret.exchanges, {})) do
    if not loop.missing(exchange.exchange_order_name) then return exchange.exchange_order_name end
  end
  return nil
end

local function exchange_order_created(ret, out)
  local name = exchange_order_name(ret)
  if not name then return end
  local id = loop.return_id(ret)
  out:track("Exchange Order Created", {
    return_id = id,
    order = loop.value(ret.order_name, null),
    exchange_order = name,
    status_page_url = loop.value(ret.status_page_url, null),
    exchange_items = loop.grouped_items(ret, nil, "exchanges"),   -- the products the customer gets
  }, { unique_id = "exchange-order-created:" .. id })
end

return {
  ["return.updated"] = function(ret, out)
    if ret.state == "closed" then exchange_order_created(ret, out) end
  end,
  ["return.closed"] = exchange_order_created,
}
