-- High-value returners: tracks "Return Processed" with the returned value when Loop closes a return,
-- the metric whose value the "High-value returners" segment sums (500 or more in the last 365 days,
-- in the store's currency). Counted at close, so cancelled returns never count; the closed return
-- arrives on both return.updated and return.closed, so one unique_id per return counts it once.
local loop = require "returnflow.loop"

local function return_processed(ret, out)
  local value = loop.money(ret.total)
  if not value then return end
  local id = loop.return_id(ret)
  out:track("Return Processed", {
    return_id = id,
    order = loop.value(ret.order_name),
    returned_value = value,
  }, { value = value, unique_id = "return-processed:" .. id })
end

return {
  ["return.updated"] = function(ret, out)
    if ret.state == "closed" then return_processed(ret, out) end
  end,
  ["return.closed"] = return_processed,
}
