-- Return Expired: on day 28 of a return that ships with a label and never moved, tells the customer
-- the label has expired (Loop's "Return Expired"). Scheduled when the return is created; cancelled as
-- soon as the parcel moves or the return is closed or cancelled.
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

local DAY = 86400
local KEY = "return-expired:"
local MOVING = { in_transit = true, out_for_delivery = true, delivered = true }

local function cancel_expiry(ev, out)
  out:cancel(KEY .. loop.return_id(ev))
end

return {
  ["return.created"] = function(ret, out)
    if not loop.labels_enabled(ret) or loop.keep_item(ret) then return end
    out:schedule(KEY .. loop.return_id(ret), 28 * DAY, "Return Expired", {
      return_id = loop.return_id(ret),
      order = loop.value(ret.order_name, null),
      expired_on = loop.return_by(ret.created_at) or null,
      status_page_url = loop.value(ret.status_page_url, null),
      items = loop.grouped_items(ret),
    })
  end,

  ["label.updated"] = function(label, out)
    if MOVING[label.label_status] then cancel_expiry(label, out) end
  end,

  ["return.updated"] = function(ret, out)
    if ret.state == "cancelled" or ret.state == "closed" then cancel_expiry(ret, out) end
  end,

  ["return.closed"] = cancel_expiry,
}
