-- Store Credit Issued: tells the customer how much store credit they received for a return (Loop's
-- giftcard.requested webhook). Loop's payload has no gift card code and no items, so the email shows
-- the amount, and the items and status page remembered from the return event (optional: the email
-- still goes out without them).
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

local KEY = "store-credit-issued:"

local function remember_return(ret, out)
  out:remember(KEY .. loop.return_id(ret), {
    status_page_url = loop.value(ret.status_page_url), items = loop.grouped_items(ret),
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
      currency_decimals = loop.currency_decimals(currency),
      items = ret.items or loop.array(),
    }, { value = credit, currency = currency, unique_id = "store-credit-issued:" .. (loop.id(gc.id) or id) })
  end,
}
