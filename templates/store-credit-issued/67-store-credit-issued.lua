-- Store Credit Issued: tells the customer how much store credit they received for a return (Loop's
-- giftcard.requested webhook). Loop's payload has no gift card code and no items, so the email shows
-- the amount, and the items and status page remembered from the return event (optional: the email
-- still goes out without them).
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

local KEY = "store-credit-issued:"

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

local function remember_return(ret, out)
  out:remember(KEY .. loop.return_id(ret), {
    status_page_url = loop.value(ret.status_page_url), items = returned_items(ret),
  })
end

return {
  ["return.created"] = remember_return,
  ["return.updated"] = remember_return,

  ["giftcard.requested"] = function(gc, out)
    local credit = loop.money(gc.total_credit_issued)
    if not credit or credit <= 0 then return end
    local id = loop.return_id(gc)
    local ret = out:recall(KEY .. id) or out:recall("return:" .. id) or {}
    local currency = loop.value(gc.currency)
    -- One email per gift card: a return can be credited twice (say, an out-of-stock exchange resolved).
    out:track("Store Credit Issued", {
      return_id = id,
      order = loop.value(gc.external_order_name, null),
      status_page_url = loop.value(ret.status_page_url, null),
      credit_amount = credit,
      bonus_credit = loop.money(gc.gift_card_bonus_credit) or 0,
      currency = loop.value(currency, null),
      currency_decimals = currency_decimals(currency),
      items = ret.items or loop.array(),
    }, { value = credit, currency = currency, unique_id = "store-credit-issued:" .. (loop.id(gc.id) or id) })
  end,
}
