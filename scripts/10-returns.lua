-- Return events: Loop's native "Loop Return Created" / "Loop Return Status Updated", plus the events
-- merchants ask for that Loop only derives internally (cancelled, out of stock, refund issued,
-- exchange order created). Edit metric names and properties here; templates add their own files.
local loop = require "returnflow.loop"

local DAY = 86400

-- Label events carry no customer: remember who the return belongs to, and when it was made.
local function remember_return(ret, out)
  out:remember("return:" .. loop.return_id(ret), {
    email = loop.email(ret), profile = loop.profile(ret), created_at = ret.created_at,
    status_page_url = loop.value(ret.status_page_url), order = loop.value(ret.order_name),
    labels_enabled = loop.labels_enabled(ret), keep_item = loop.keep_item(ret),
  })
end

-- Loop's reminder (day 21) and expiry (day 28) for a return not yet shipped; a moving parcel or a
-- closed return cancels them (see 20-labels.lua and below).
local function schedule_expiry(ret, out, props)
  if not loop.labels_enabled(ret) or loop.keep_item(ret) then return end
  local id = loop.return_id(ret)
  out:schedule("expiring:" .. id, 21 * DAY, "Loop Return Expiring", props)
  out:schedule("expired:" .. id, 28 * DAY, "Loop Return Expired", props)
end

local function cancel_expiry(ret, out)
  local id = loop.return_id(ret)
  out:cancel("expiring:" .. id)
  out:cancel("expired:" .. id)
end

-- Refund and exchange order arrive on return.updated (closed) and on return.closed: one unique_id
-- per return, so Klaviyo counts each once whichever webhook brings it.
local function closed_outcomes(ret, out, props)
  local id = loop.return_id(ret)
  local refund = loop.money(ret.refund)
  if refund and refund > 0 then
    out:track("Loop Refund Issued", props, { value = refund, unique_id = "refund:" .. id })
  end
  for _, exchange in ipairs(loop.value(ret.exchanges, {})) do
    if not loop.missing(exchange.exchange_order_name) then
      local p = loop.properties(ret)
      p.exchange_order_name = exchange.exchange_order_name
      p.exchange_order_id = loop.id(exchange.exchange_order_id)
      out:track("Loop Exchange Order Created", p, { unique_id = "exchange-order:" .. id })
      break
    end
  end
end

return {
  ["return.created"] = function(ret, out)
    local props = loop.properties(ret)
    out:track("Loop Return Created", props, { value = loop.money(ret.total) })
    if ret.is_gift_return == true then out:track("Loop Gift Return Request", props) end
    remember_return(ret, out)
    schedule_expiry(ret, out, props)
  end,

  ["return.updated"] = function(ret, out)
    local props = loop.properties(ret)
    out:track("Loop Return Status Updated", props, { value = loop.money(ret.total) })
    remember_return(ret, out)
    local state = ret.state
    if state == "cancelled" then
      out:track("Loop Return Cancelled", props)
      cancel_expiry(ret, out)
    elseif state == "closed" then
      closed_outcomes(ret, out, props)
      cancel_expiry(ret, out)
    elseif state == "review" then
      for _, exchange in ipairs(loop.value(ret.exchanges, {})) do
        if exchange.out_of_stock == true then
          out:track("Loop Exchange Out Of Stock", props)
          break
        end
      end
    end
  end,

  ["return.closed"] = function(ret, out)
    remember_return(ret, out)
    closed_outcomes(ret, out, loop.properties(ret))
    cancel_expiry(ret, out)
  end,
}
