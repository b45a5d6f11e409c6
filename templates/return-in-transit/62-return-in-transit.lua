-- Return In Transit: tells the customer the carrier has their parcel, as a Klaviyo flow on the
-- default "Loop Label Updated", once per return: on the first label update that shows the parcel
-- moving, in_transit or out_for_delivery, whichever Loop sends first (a parcel may skip in_transit).
-- The default event carries the order, the status page, the carrier and the tracking; this file adds
-- the items, remembered from the return (label events carry none), and first_move, which the flow's
-- trigger filter reads.
local loop = require "returnflow.loop"

local KEY = "return-in-transit:"
local MOVED = "return-in-transit-moved:"
local MOVING = { in_transit = true, out_for_delivery = true }

local function remember_items(ret, out)
  out:remember(KEY .. loop.return_id(ret), { items = loop.grouped_items(ret) })
end

-- True on the return's first moving status, and again for that same status (a retried or replayed
-- webhook, which Klaviyo drops by its unique_id); false for a later one, so the flow sends one email.
local function first_move(label, _, out)
  local status = label.label_status
  if not MOVING[status] then return false end
  local key = MOVED .. loop.return_id(label)
  local first = out:recall(key)
  if first == nil then
    out:remember(key, status)
    return true
  end
  return first == status
end

return {
  ["return.created"] = remember_items,
  ["return.updated"] = remember_items,

  changes = {
    ["Loop Label Updated"] = { trigger = "label.updated", properties = {
      items = function(label, _, out)
        local ret = out:recall(KEY .. loop.return_id(label))
        return ret and ret.items or loop.array()
      end,
      first_move = first_move,
    } },
  },
}
