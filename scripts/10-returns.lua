-- Return events: Loop's native "Loop Return Created" / "Loop Return Status Updated", plus the events
-- merchants ask for that Loop only derives internally (cancelled, out of stock and its resolution,
-- refund issued, exchange order created). Change metric names and properties from a file of your own
-- (`changes`, docs/mapping-api.md) rather than here, so later fixes of these files still reach you.
local loop = require "returnflow.loop"

local DAY = 86400

-- Each customer's returns, by return id, with the time each was created. A return's returns_count is
-- its place among them in time, so a replay or a backfill (in any order) gives it the same count;
-- first_return is true for the first. Read on every return event, so the count is on all of them.
local function count_returns(ret, out, props)
  local email, id = loop.email(ret), loop.return_id(ret)
  props.returns_count, props.first_return = loop.null, loop.null   -- unknown without a customer
  if not email or not id then return end
  local key = "customer:" .. email:lower()
  local returns = out:recall(key) or {}
  if returns[id] == nil then
    returns[id] = loop.value(ret.created_at, "")
    out:remember(key, returns)
  end
  local mine, n = loop.epoch(returns[id]) or 0, 0
  for other, created in pairs(returns) do
    local at = loop.epoch(created) or 0
    if at < mine or (at == mine and other <= id) then n = n + 1 end
  end
  props.returns_count = n
  props.first_return = n == 1
end

-- Label events carry no customer: remember who the return belongs to, its properties (label events
-- carry them too) and when it was last seen (the time of a store credit event, which has none).
local function remember_return(ret, out, props)
  out:remember("return:" .. loop.return_id(ret), {
    email = loop.email(ret), profile = loop.profile(ret), created_at = ret.created_at,
    status_page_url = loop.value(ret.status_page_url), order = loop.value(ret.order_name),
    labels_enabled = loop.labels_enabled(ret), keep_item = loop.keep_item(ret),
    last_event_at = loop.time(ret), properties = props,
  })
end

-- The properties of every return event: Loop's, and the customer's count of returns.
local function return_properties(ret, out)
  local props = loop.properties(ret)
  count_returns(ret, out, props)
  remember_return(ret, out, props)
  return props
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
      local p = {}
      for k, v in pairs(props) do p[k] = v end
      p.exchange_order_name = exchange.exchange_order_name
      p.exchange_order_id = loop.value(loop.id(exchange.exchange_order_id), loop.null)
      out:track("Loop Exchange Order Created", p, { unique_id = "exchange-order:" .. id })
      break
    end
  end
end

-- Loop's exchange items may carry out_of_stock, and later out_of_stock_resolution (what was done
-- instead: another variant, store credit, a refund). Returns the first of each, or nil.
local function out_of_stock(ret)
  local found, resolution
  for _, exchange in ipairs(loop.value(ret.exchanges, {})) do
    if exchange.out_of_stock == true then found = found or exchange end
    if not loop.missing(exchange.out_of_stock_resolution) then resolution = resolution or exchange end
  end
  return found, resolution
end

return {
  ["return.created"] = function(ret, out)
    local props = return_properties(ret, out)
    out:track("Loop Return Created", props, { value = loop.money(ret.total) })
    if ret.is_gift_return == true then out:track("Loop Gift Return Request", props) end
    schedule_expiry(ret, out, props)
  end,

  ["return.updated"] = function(ret, out)
    local props = return_properties(ret, out)
    out:track("Loop Return Status Updated", props, { value = loop.money(ret.total) })
    local state = ret.state
    if state == "cancelled" then
      out:track("Loop Return Cancelled", props)
      cancel_expiry(ret, out)
    elseif state == "closed" then
      closed_outcomes(ret, out, props)
      cancel_expiry(ret, out)
    end
    local missing, resolved = out_of_stock(ret)
    if state == "review" and missing then out:track("Loop Exchange Out Of Stock", props) end
    if resolved then
      local p = {}
      for k, v in pairs(props) do p[k] = v end
      p.out_of_stock_resolution = resolved.out_of_stock_resolution
      out:track("Loop Out Of Stock Resolved", p, { unique_id = "out-of-stock-resolved:" .. loop.return_id(ret) })
    end
  end,

  ["return.closed"] = function(ret, out)
    closed_outcomes(ret, out, return_properties(ret, out))
    cancel_expiry(ret, out)
  end,
}
