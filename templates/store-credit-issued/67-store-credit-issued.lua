-- Store Credit Issued: tells the customer how much store credit they received for a return, as a
-- Klaviyo flow on the default "Loop Store Credit Issued" (Loop's giftcard.requested). Loop's payload
-- has no gift card code and no items: the email shows the amount, and the items remembered here from
-- the return event (optional: the email still goes out without them).
local loop = require "returnflow.loop"

local KEY = "store-credit-issued:"

local function remember_items(ret, out)
  out:remember(KEY .. loop.return_id(ret), { items = loop.grouped_items(ret) })
end

return {
  ["return.created"] = remember_items,
  ["return.updated"] = remember_items,

  changes = {
    ["Loop Store Credit Issued"] = { properties = {
      credit_amount = function(gc) return loop.value(loop.money(gc.total_credit_issued), loop.null) end,
      bonus_credit = function(gc) return loop.money(gc.gift_card_bonus_credit) or 0 end,
      currency_decimals = function(gc) return loop.currency_decimals(loop.value(gc.currency)) end,
      items = function(gc, _, out)
        local ret = out:recall(KEY .. loop.return_id(gc))
        return ret and ret.items or loop.array()
      end,
    } },
  },
}
