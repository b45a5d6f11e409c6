-- Store credit: Loop's giftcard.requested webhook means store credit was issued for a return.
-- Loop's payload has no gift card code, so the email can show the amount but not the code. It has no
-- time either: the event takes the time of its return's last event (remembered by 10-returns.lua),
-- so a backfilled one lands when the credit was issued, not when it was imported.
local loop = require "returnflow.loop"

return {
  ["giftcard.requested"] = function(gc, out)
    local id = loop.return_id(gc)
    local ret = out:recall("return:" .. id) or {}
    out:track("Loop Store Credit Issued", {
      event_id = gc.trigger,
      return_id = id,
      giftcard_id = loop.id(gc.id),
      order = loop.value(gc.external_order_name),
      provider_order_id = loop.id(gc.external_order_id),
      status_page_url = loop.value(ret.status_page_url, loop.null),   -- null until its return was seen
      credit_issued = loop.money(gc.total_credit_issued),
      gift_card_subtotal = loop.money(gc.gift_card_subtotal),
      bonus_credit = loop.money(gc.gift_card_bonus_credit),
      currency = loop.value(gc.currency),
    }, { value = loop.money(gc.total_credit_issued), currency = loop.value(gc.currency),
         time = loop.time(gc) or ret.last_event_at })
  end,
}
