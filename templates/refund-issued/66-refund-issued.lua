-- Refund Issued: tells the customer how much was refunded, and for which items, once Loop closes the
-- return with a refund. The refund arrives on both return.updated (closed) and return.closed: one
-- unique_id per return, so Klaviyo keeps one event and the customer gets one email.
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

-- The refunded products, one entry each: Loop sends one line per unit.
local function refunded_items(ret)
  local items, seen = loop.array(), {}
  for _, line in ipairs(loop.items(ret)) do
    if line.outcome == "refund" then
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
  end
  return items
end

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
    currency_decimals = currency_decimals(currency),
    refunded_items = refunded_items(ret),
  }, { value = refund, unique_id = "refund-issued:" .. id })
end

return {
  ["return.updated"] = function(ret, out)
    if ret.state == "closed" then refund_issued(ret, out) end
  end,
  ["return.closed"] = refund_issued,
}
