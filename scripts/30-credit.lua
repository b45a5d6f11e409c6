-- Store credit: Loop's giftcard.requested webhook means store credit was issued for a return.
-- Loop's payload has no gift card code, so the email can show the amount but not the code.
local loop = require "returnflow.loop"

return {
  ["giftcard.requested"] = function(gc, out)
    out:track("Loop Store Credit Issued", {
      event_id = gc.trigger,
      return_id = loop.return_id(gc),
      giftcard_id = loop.id(gc.id),
      order = loop.value(gc.external_order_name),
      credit_issued = loop.money(gc.total_credit_issued),
      gift_card_subtotal = loop.money(gc.gift_card_subtotal),
      bonus_credit = loop.money(gc.gift_card_bonus_credit),
      currency = loop.value(gc.currency),
    }, { value = loop.money(gc.total_credit_issued), currency = loop.value(gc.currency) })
  end,
}
