-- Refund Issued: tells the customer how much was refunded, and for which items, once Loop closes the
-- return with a refund. The refund arrives on both return.updated (closed) and return.closed: one
-- unique_id per return, so Klaviyo keeps one event and the customer gets one email.
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

-- The refunded products: the lines Loop closed with outcome "refund".
local function refunded(line) return line.outcome == "refund" end

local function refund_issued(ret, out)
  local refund = loop.money(ret.refund)
  if not refund or refund <= 0 then return end
  local id = loop.return_id(ret)
  local currency = loop.value(ret.currency)
  out:track("Refund Issued", {
    return_id = id,
    order = loop.value(ret.order_name, null),
    status_page_url = loop.value(ret.status_page_url, null),
    refund_amount = refund,
    currency = loop.value(currency, null),
    currency_decimals = loop.currency_decimals(currency),
    refunded_items = loop.grouped_items(ret, refunded),
  }, { value = refund, unique_id = "refund-issued:" .. id })
end

return {
  ["return.updated"] = function(ret, out)
    if ret.state == "closed" then refund_issued(ret, out) end
  end,
  ["return.closed"] = refund_issued,
}
