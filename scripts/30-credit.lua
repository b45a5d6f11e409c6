-- Store credit: Loop's giftcard.requested webhook means store credit was issued for a return.
-- Loop's payload has no gift card code, so the email can show the amount but not the code. It has no
-- time either: the event takes the time of its return's last event (remembered by 10-returns.lua),
-- so a backfilled one lands when the credit was issued, not when it was imported.
-- Every property is present, null when Loop sends no value, so a flow can filter on any of them.
local loop = require "returnflow.loop"

local null = loop.null

local function known(v) return loop.value(v, null) end

-- One event per credit, not per return: a return may bring two (its store-credit outcome, then Loop's
-- automatic gift card for an exchange item out of stock), which one unique_id would collapse into one.
-- Loop's `id` is the gift card's; Loop sends null for the automatic out-of-stock gift card, which is
-- then told apart by its return and amount. A retried webhook repeats both, so Klaviyo counts it once.
local function credit_unique_id(gc, return_id)
  local giftcard = loop.id(gc.id)
  if giftcard then return "store-credit:" .. giftcard end
  return "store-credit:" .. return_id .. ":out-of-stock:" .. tostring(loop.value(gc.total_credit_issued, ""))
end

return {
  ["giftcard.requested"] = function(gc, out)
    local id = loop.return_id(gc)
    local ret = out:recall("return:" .. id) or {}
    out:track("Loop Store Credit Issued", {
      event_id = gc.trigger,
      return_id = id,
      giftcard_id = known(loop.id(gc.id)),
      order = known(gc.external_order_name),
      provider_order_id = known(loop.id(gc.external_order_id)),
      status_page_url = known(ret.status_page_url),   -- null until its return was seen
      credit_issued = known(loop.money(gc.total_credit_issued)),
      gift_card_subtotal = known(loop.money(gc.gift_card_subtotal)),
      gift_card_tax = known(loop.money(gc.gift_card_tax)),
      bonus_credit = known(loop.money(gc.gift_card_bonus_credit)),
      currency = known(gc.currency),
    }, { value = loop.money(gc.total_credit_issued), currency = loop.value(gc.currency),
         time = loop.time(gc) or ret.last_event_at, unique_id = credit_unique_id(gc, id) })
  end,
}
